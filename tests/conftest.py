"""Shared test setup. The Hub client reads its settings once, at import: they are set here first.

Every test session gets a private HF_HOME/HF_HUB_CACHE and an in-process Hub-compatible server
(tests/hub_server.py) as HF_ENDPOINT, so no test can touch a real cache, token or the real Hub.
"""
import atexit
import os
import shutil
import sys
import tempfile

if "huggingface_hub" in sys.modules:  # pragma: no cover - guards the ordering this file relies on
    raise RuntimeError("huggingface_hub was imported before tests/conftest.py could configure it")

_HF_HOME = tempfile.mkdtemp(prefix="gdzoo-tests-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(_var, None)
os.environ.update({
    "HF_HOME": _HF_HOME,
    "HF_HUB_CACHE": os.path.join(_HF_HOME, "hub"),
    "HF_HUB_DISABLE_XET": "1",  # upload LFS files over plain HTTP, which the test server speaks
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
})

sys.path.insert(0, os.path.dirname(__file__))
from hub_server import HubServer  # noqa: E402

_HUB = HubServer().start()
atexit.register(_HUB.stop)
os.environ["HF_ENDPOINT"] = _HUB.url

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def hub_server() -> HubServer:
    """The session's Hub server; HF_ENDPOINT already points at it. Use unique repo names per test."""
    return _HUB
