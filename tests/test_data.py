import numpy as np
import pytest
import torch
from PIL import Image

from gdzoo import data


def write_png(image: torch.Tensor, path: str) -> None:
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)


def _write_folder(root, classes=3, per_class=6, size=8):
    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)
            write_png(image, str(folder / f"{i:04d}.png"))
    return root


def test_holdout_takes_last_files_of_each_class(tmp_path):
    _write_folder(tmp_path)
    train, val = data.load_small_image_folder(tmp_path, val_per_class=2, desc=None)
    assert train.images.shape == (12, 3, 8, 8) and val.images.shape == (6, 3, 8, 8)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.classes == ["class0", "class1", "class2"]
    last = torch.from_numpy(np.array(Image.open(tmp_path / "train" / "class1" / "0005.png"))).permute(2, 0, 1)
    assert torch.equal(val.images[3], last)


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(data.DataError, match="does not exist; pass --data"):
        data.load_small_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataError, match="has no class sub-folders"):
        data.load_small_image_folder(tmp_path / "empty")
    _write_folder(tmp_path / "ok")
    (tmp_path / "ok" / "train" / "class9").mkdir()
    with pytest.raises(data.DataError, match="class9 holds no images"):
        data.load_small_image_folder(tmp_path / "ok")
    (tmp_path / "ok" / "train" / "class9").rmdir()
    with pytest.raises(data.DataError, match="class 0 has 6 images, too few to hold out 6"):
        data.load_small_image_folder(tmp_path / "ok", val_per_class=6, desc=None)
    write_png(torch.zeros(3, 9, 9, dtype=torch.uint8), str(tmp_path / "ok" / "train" / "class2" / "0099.png"))
    with pytest.raises(data.DataError, match=r"0099.png is \(9, 9\), expected \(8, 8\)"):
        data.load_small_image_folder(tmp_path / "ok", val_per_class=1, desc=None)


def test_random_crop_flip_geometry():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    centred = data.random_crop_flip(x, torch.full((2, 2), 2), torch.tensor([False, True]), padding=2)
    assert torch.equal(centred[0], x[0]) and torch.equal(centred[1], x[1].flip(2))
    shifted = data.random_crop_flip(x, torch.tensor([[0, 4], [0, 4]]), torch.tensor([False, False]), padding=2)
    assert torch.equal(shifted[0, 0, 2:, 2:], x[0, 0, :2, :2]) and shifted[0, 0, :2].sum() == 0
    assert torch.equal(shifted[1, 0, :2, :2], x[1, 0, 2:, 2:]) and shifted[1, 0, 2:].sum() == 0


def test_tensor_loader_is_deterministic_and_shards_global_batches():
    train, _ = data.synthetic(4, 40, 8, image_size=8, seed=1)
    kw = dict(train=True, mean=(0.5,) * 3, std=(0.25,) * 3, seed=3)
    single = list(data.TensorLoader(train, 8, **kw).epoch(2))
    assert len(single) == 5
    again = list(data.TensorLoader(train, 8, **kw).epoch(2))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(single, again))
    other = list(data.TensorLoader(train, 8, **kw).epoch(3))
    assert not torch.equal(single[0][1], other[0][1]) or not torch.equal(single[0][0], other[0][0])
    ranks = [list(data.TensorLoader(train, 8, rank=r, world_size=2, **kw).epoch(2)) for r in range(2)]
    for b, (images, labels) in enumerate(single):
        assert torch.equal(torch.cat([ranks[0][b][0], ranks[1][b][0]]), images)
        assert torch.equal(torch.cat([ranks[0][b][1], ranks[1][b][1]]), labels)
    with pytest.raises(ValueError, match="global batch size 9 is not divisible by world size 2"):
        data.TensorLoader(train, 9, rank=0, world_size=2, **kw)


def test_eval_loader_covers_every_sample_once_normalised():
    _, val = data.synthetic(3, 3, 10, image_size=4, seed=0)
    loader = data.TensorLoader(val, 4, train=False, mean=(0.0,) * 3, std=(1.0,) * 3)
    batches = list(loader.epoch(0))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    images = torch.cat([x for x, _ in batches])
    torch.testing.assert_close(images, val.images.float() / 255)


def test_synthetic_data_is_learnable_signal():
    train, val = data.synthetic(3, 30, 30, image_size=8, seed=0)
    means = torch.stack([train.images[train.labels == c].float().mean(0) for c in range(3)])
    nearest = ((val.images.float()[:, None] - means[None]) ** 2).flatten(2).sum(2).argmin(1)
    assert (nearest == val.labels).float().mean() == 1.0


def test_validation_split_alone_equals_the_full_loads_validation(tmp_path):
    _write_folder(tmp_path)
    _, val = data.load_small_image_folder(tmp_path, val_per_class=2, desc=None)
    alone = data.load_validation_split(tmp_path, val_per_class=2)
    assert torch.equal(alone.images, val.images) and torch.equal(alone.labels, val.labels)
    assert alone.classes == val.classes
