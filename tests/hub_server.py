"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only, in memory).

It implements what the unmodified ``huggingface_hub`` client calls to create a repo, upload a
folder (validate-yaml, preupload, LFS batch + basic upload + verify, ndjson commit), create a
branch, read repo info by revision, list a tree, get paths-info, and resolve files (HEAD/GET with
X-Repo-Commit, ETag, Content-Length and Range). Errors carry the ``X-Error-Code`` header that
``huggingface_hub.utils.hf_raise_for_status`` maps to RepositoryNotFoundError (RepoNotFound),
RevisionNotFoundError (RevisionNotFound) and EntryNotFoundError (EntryNotFound).

Every commit is immutable and addressed by a 40-hex sha; branches are names pointing at commits,
so several commits per repo and loading by branch or by sha both work.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import parse_qs, unquote, urlsplit

LFS_PATTERNS = re.compile(r"\.(safetensors|bin|pt|pth|ckpt|ckp|pkl|pickle|h5|onnx|npz|tar|gz|zip)$")
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub also stores big or binary files in LFS
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """One file of a commit. LFS files are addressed by sha256 in the server's LFS store."""

    size: int
    oid: str  # git sha1 for regular files, sha256 for LFS files (what the client compares)
    lfs_sha256: Optional[str] = None
    content: bytes = b""  # regular files only


@dataclass
class Commit:
    sha: str
    parent: Optional[str]
    files: dict[str, Blob]
    title: str
    date: str


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Optional[Commit]:
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class HubState:
    """Repos, commits and the LFS store, guarded by one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self._counter = itertools.count()

    def new_commit(self, repo: Repo, parent: Optional[str], files: dict[str, Blob], title: str) -> Commit:
        seed = f"{repo.repo_id}/{parent}/{next(self._counter)}/{sorted((p, b.oid) for p, b in files.items())}"
        commit = Commit(hashlib.sha1(seed.encode()).hexdigest(), parent, files, title,
                        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        repo.commits[commit.sha] = commit
        return commit

    def content(self, blob: Blob) -> bytes:
        return self.lfs[blob.lfs_sha256] if blob.lfs_sha256 else blob.content


class HubError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None,
                 headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    # ---- plumbing ---------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes = b"", headers: Optional[dict[str, str]] = None,
              content_type: str = "application/json", head: bool = False, length: Optional[int] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: Optional[dict[str, str]] = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), headers, head=head)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        segments = url.path.split("/")[1:]
        query = parse_qs(url.query)
        body = self._body() if method in ("POST", "PUT") else b""
        try:
            with self.state.lock:
                self._route(method, segments, query, body)
        except HubError as e:
            headers = dict(e.headers)
            if e.code:
                headers["X-Error-Code"] = e.code
            headers["X-Error-Message"] = e.message
            self._json(e.status, {"error": e.message}, headers, head=method == "HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ---- routing ----------------------------------------------------------------------------------
    def _route(self, method: str, seg: list[str], query: dict, body: bytes) -> None:
        if method == "POST" and seg == ["api", "repos", "create"]:
            return self._create_repo(json.loads(body))
        if method == "POST" and seg == ["api", "validate-yaml"]:
            return self._validate_yaml(json.loads(body))
        if method == "PUT" and len(seg) == 2 and seg[0] == "lfs-upload":
            return self._lfs_put(seg[1], body)
        if method == "POST" and seg == ["lfs-verify"]:
            return self._lfs_verify(json.loads(body))
        if seg[:2] == ["api", "models"] and len(seg) >= 4:
            repo = self._repo(f"{seg[2]}/{seg[3]}")
            rest = seg[4:]
            if method == "GET" and not rest:
                return self._model_info(repo, "main")
            if method == "GET" and rest[0] == "revision" and len(rest) == 2:
                return self._model_info(repo, unquote(rest[1]))
            if method == "POST" and rest[0] == "preupload" and len(rest) == 2:
                return self._preupload(repo, unquote(rest[1]), json.loads(body))
            if method == "POST" and rest[0] == "commit" and len(rest) == 2:
                return self._commit(repo, unquote(rest[1]), body)
            if method == "POST" and rest[0] == "branch" and len(rest) == 2:
                return self._create_branch(repo, unquote(rest[1]), json.loads(body or b"{}"))
            if method == "GET" and rest[0] == "tree" and len(rest) >= 2:
                return self._tree(repo, unquote(rest[1]), unquote("/".join(rest[2:])), query)
            if method == "POST" and rest[0] == "paths-info" and len(rest) == 2:
                return self._paths_info(repo, unquote(rest[1]), parse_qs(body.decode()))
        if method == "POST" and len(seg) == 6 and seg[1].endswith(".git") and seg[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(self._repo(f"{seg[0]}/{seg[1][:-4]}"), json.loads(body))
        if method in ("GET", "HEAD") and len(seg) >= 5 and seg[2] == "resolve":
            return self._resolve(method, self._repo(f"{seg[0]}/{seg[1]}"), unquote(seg[3]),
                                 unquote("/".join(seg[4:])))
        raise HubError(404, f"no such endpoint: {method} {self.path}")

    def _repo(self, repo_id: str) -> Repo:
        repo = self.state.repos.get(repo_id)
        authorized = (self.headers.get("Authorization") or "").startswith("Bearer ")
        if repo is None or (repo.private and not authorized):
            raise HubError(404 if repo is None else 401, "Repository not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    # ---- endpoints --------------------------------------------------------------------------------
    def _create_repo(self, payload: dict) -> None:
        if payload.get("type", "model") != "model":
            raise HubError(400, "this test server only hosts model repos")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else f"user/{payload['name']}"
        url = f"{self.base}/{repo_id}"
        if repo_id in self.state.repos:
            return self._json(409, {"error": "You already created this model repo", "url": url})
        repo = Repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        self.state.repos[repo_id] = repo
        first = self.state.new_commit(repo, None, {".gitattributes": Blob(len(GITATTRIBUTES), git_sha1(GITATTRIBUTES),
                                                                          content=GITATTRIBUTES)}, "initial commit")
        repo.branches["main"] = first.sha
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict) -> None:
        errors = validate_card_metadata(payload.get("content", ""))
        if errors:
            return self._json(400, {"errors": [{"message": m} for m in errors]})
        self._json(200, {"warnings": []})

    def _model_info(self, repo: Repo, revision: str) -> None:
        commit = self._commit_at(repo, revision)
        self._json(200, {
            "id": repo.repo_id, "modelId": repo.repo_id, "sha": commit.sha, "private": repo.private,
            "lastModified": commit.date, "tags": [], "downloads": 0, "likes": 0,
            "siblings": [{"rfilename": p} for p in sorted(commit.files)],
        })

    def _preupload(self, repo: Repo, revision: str, payload: dict) -> None:
        commit = self._commit_at(repo, revision)
        files = []
        for f in payload["files"]:
            sample = base64.b64decode(f["sample"])
            lfs = bool(LFS_PATTERNS.search(f["path"])) or f["size"] >= LFS_MIN_SIZE or b"\0" in sample
            existing = commit.files.get(f["path"])
            files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": existing.oid if existing else None})
        self._json(200, {"files": files, "commitOid": commit.sha})

    def _lfs_batch(self, repo: Repo, payload: dict) -> None:
        if payload.get("operation") != "upload":
            raise HubError(400, "only uploads are supported")
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.state.lfs:
                entry["actions"] = {"upload": {"href": f"{self.base}/lfs-upload/{obj['oid']}"},
                                    "verify": {"href": f"{self.base}/lfs-verify"}}
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"uploaded content does not hash to {oid}")
        self.state.lfs[oid] = body
        self._send(200)

    def _lfs_verify(self, payload: dict) -> None:
        data = self.state.lfs.get(payload["oid"])
        if data is None or len(data) != payload["size"]:
            raise HubError(404, f"object {payload['oid']} was not uploaded")
        self._json(200, {"success": True})

    def _commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commit to a branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = lines[0]["value"]
        head = repo.branches[revision]
        if header.get("parentCommit") and header["parentCommit"] != head:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[head].files)
        for item in lines[1:]:
            key, value = item["key"], item["value"]
            if key == "file":
                data = base64.b64decode(value["content"])
                files[value["path"]] = Blob(len(data), git_sha1(data), content=data)
            elif key == "lfsFile":
                if value["oid"] not in self.state.lfs:
                    raise HubError(400, f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = Blob(len(self.state.lfs[value["oid"]]), value["oid"], lfs_sha256=value["oid"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {p: b for p, b in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unsupported commit operation {key!r}")
        commit = self.state.new_commit(repo, head, files, header.get("summary", ""))
        repo.branches[revision] = commit.sha
        self._json(200, {"success": True, "commitOid": commit.sha,
                         "commitUrl": f"{self.base}/{repo.repo_id}/commit/{commit.sha}"})

    def _create_branch(self, repo: Repo, branch: str, payload: dict) -> None:
        if branch in repo.branches:
            raise HubError(409, f"Reference already exists: refs/heads/{branch}")
        start = self._commit_at(repo, payload.get("startingPoint") or "main")
        repo.branches[branch] = start.sha
        self._json(200, {})

    def _entries(self, commit: Commit, prefix: str, recursive: bool) -> list[dict]:
        base = prefix.rstrip("/") + "/" if prefix else ""
        out, folders = [], set()
        for path in sorted(commit.files):
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            if "/" in rest and not recursive:
                folders.add(base + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                folders.update(base + "/".join(parts[: i + 1]) for i in range(len(parts)))
            out.append(self._file_entry(path, commit.files[path]))
        out += [{"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0}
                for f in sorted(folders)]
        return out

    @staticmethod
    def _file_entry(path: str, blob: Blob) -> dict:
        entry = {"type": "file", "path": path, "size": blob.size, "oid": blob.oid}
        if blob.lfs_sha256:
            entry["oid"] = git_sha1(f"version https://git-lfs.github.com/spec/v1\noid sha256:{blob.lfs_sha256}\n"
                                    f"size {blob.size}\n".encode())
            entry["lfs"] = {"oid": blob.lfs_sha256, "size": blob.size, "pointerSize": 134}
        return entry

    def _tree(self, repo: Repo, revision: str, path: str, query: dict) -> None:
        commit = self._commit_at(repo, revision)
        recursive = query.get("recursive", ["False"])[0].lower() == "true"
        if path and not any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
            raise HubError(404, f"{path} does not exist at {revision}", "EntryNotFound",
                           {"X-Repo-Commit": commit.sha})
        self._json(200, self._entries(commit, path, recursive))

    def _paths_info(self, repo: Repo, revision: str, form: dict) -> None:
        commit = self._commit_at(repo, revision)
        out = []
        for path in form.get("paths", []):
            if path in commit.files:
                out.append(self._file_entry(path, commit.files[path]))
            elif any(p.startswith(path.rstrip("/") + "/") for p in commit.files):
                out.append({"type": "directory", "path": path, "oid": hashlib.sha1(path.encode()).hexdigest()})
        self._json(200, out)

    def _resolve(self, method: str, repo: Repo, revision: str, path: str) -> None:
        commit = self._commit_at(repo, revision)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = self.state.content(blob)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs_sha256:
            headers.update({"X-Linked-Etag": f'"{blob.lfs_sha256}"', "X-Linked-Size": str(blob.size)})
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
            if start >= len(data):
                raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start:end + 1], headers, "application/octet-stream", head=method == "HEAD")
        self._send(200, data, headers, "application/octet-stream", head=method == "HEAD")


def validate_card_metadata(content: str) -> list[str]:
    """What the Hub checks in a README's YAML header, as a list of error messages (empty: valid)."""
    import yaml
    from huggingface_hub.repocard_data import model_index_to_eval_results

    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
    if not match:
        return []
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as e:
        return [f"YAML header is not valid YAML: {e}"]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["YAML header must be a mapping"]
    errors = []
    for key in ("license", "library_name", "pipeline_tag", "model_name"):
        if key in meta and not isinstance(meta[key], str):
            errors.append(f'"{key}" must be a string')
    for key in ("tags", "datasets", "base_model", "language", "metrics"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) or
                                      (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')
    for key in ("datasets", "base_model"):
        for value in [meta.get(key)] if isinstance(meta.get(key), str) else meta.get(key) or []:
            if isinstance(value, str) and value.count("/") > 1:
                errors.append(f'"{key}" entry {value!r} is not a repo id')
    if "model-index" in meta:
        try:
            name, results = model_index_to_eval_results(meta["model-index"])
            for r in results:
                if r.metric_value is None:
                    errors.append(f'"model-index" metric {r.metric_type!r} has no value')
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            errors.append(f'"model-index" is malformed: {e!r}')
    return errors


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState


class HubServer:
    """The server on 127.0.0.1 at a free port; ``url`` is what HF_ENDPOINT should be."""

    def __init__(self) -> None:
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.state = HubState()
        self.state = self.httpd.state
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "HubServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="test-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
