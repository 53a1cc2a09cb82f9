"""Tests of qgvae.data: tiny datasets written in each exact on-disk format go through the whole
path (prepare -> load_split -> DeviceLoader); plus real MNIST when QGVAE_DATA_ROOT is set.

torchvision checks the MD5 of the real files; the tiny files here cannot match, so the tests
replace only torchvision's expected-MD5 tables (MNIST.resources, CIFAR10.train_list/test_list/
meta/tgz_md5, SVHN.split_list, CelebA.file_list) with the MD5s of the files they write.  Parsing
is never patched.  Tiny files also cannot have the real split counts: the tests set
``qgvae.data.SPLIT_COUNT_OVERRIDES`` through monkeypatch.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from qgvae import data
from qgvae.data import DataError, DeviceLoader

RNG = np.random.default_rng(1234)


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def pil_resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR))


# ------------------------------------------------------------------------------------------
# writers of the exact on-disk formats
# ------------------------------------------------------------------------------------------


def idx_bytes(arr: np.ndarray) -> bytes:
    """IDX format: big-endian magic 0x0000 08 <ndim> (08 = unsigned byte), big-endian dims, data."""
    assert arr.dtype == np.uint8
    header = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(
        struct.pack(">I", d) for d in arr.shape
    )
    return header + arr.tobytes()


def write_mnist(
    root: Path, monkeypatch, n_train: int = 60, n_test: int = 12
) -> dict[str, np.ndarray]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, n_test, dtype=np.uint8),
    }
    resources = []
    for fname, _ in MNIST.resources:
        path = raw / fname
        path.write_bytes(gzip.compress(idx_bytes(arrays[fname[:-3]]), mtime=0))
        resources.append((fname, md5(path)))
    monkeypatch.setattr(MNIST, "resources", resources)
    monkeypatch.setitem(
        data.SPLIT_COUNT_OVERRIDES,
        "mnist",
        {"train": n_train - n_train // 4, "val": n_train // 4, "test": n_test},
    )
    return {"train": arrays["train-images-idx3-ubyte"], "test": arrays["t10k-images-idx3-ubyte"]}


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 ``str`` (BINSTRING), like the cPickle that made CIFAR's
    batches: loaded with encoding='bytes' the keys are b'data', b'labels'; with torchvision's
    encoding='latin1' they are 'data', 'labels'."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = save_py2str
    dispatch[bytes] = save_py2str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # numpy 1.x under Python 2 named the reconstructor numpy.core.multiarray
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar(
    root: Path, monkeypatch, per_batch: int = 8, n_test: int = 10, archive_only: bool = False
) -> dict[str, np.ndarray]:
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)
    train = RNG.integers(0, 256, (5 * per_batch, 3072), dtype=np.uint8)
    test = RNG.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    train_list = []
    for i in range(5):
        rows = train[i * per_batch : (i + 1) * per_batch]
        batch = {
            "batch_label": f"training batch {i + 1} of 5",
            "labels": [int(v) for v in RNG.integers(0, 10, per_batch)],
            "data": rows,
            "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
        }
        (folder / f"data_batch_{i + 1}").write_bytes(py2_pickle(batch))
        train_list.append([f"data_batch_{i + 1}", md5(folder / f"data_batch_{i + 1}")])
    (folder / "test_batch").write_bytes(
        py2_pickle(
            {
                "batch_label": "testing batch 1 of 1",
                "labels": [0] * n_test,
                "data": test,
                "filenames": [f"t{j}.png" for j in range(n_test)],
            }
        )
    )
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (folder / "batches.meta").write_bytes(
        py2_pickle({"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072})
    )
    monkeypatch.setattr(CIFAR10, "train_list", train_list)
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5(folder / "test_batch")]])
    monkeypatch.setattr(
        CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": md5(folder / "batches.meta")},
    )
    if archive_only:
        with tarfile.open(root / CIFAR10.filename, "w:gz") as tar:
            tar.add(folder, arcname=CIFAR10.base_folder)
        shutil.rmtree(folder)
        monkeypatch.setattr(CIFAR10, "tgz_md5", md5(root / CIFAR10.filename))
    n_val = 2 * per_batch
    monkeypatch.setitem(
        data.SPLIT_COUNT_OVERRIDES,
        "cifar10",
        {"train": 5 * per_batch - n_val, "val": n_val, "test": n_test},
    )
    chw = lambda a: a.reshape(-1, 3, 32, 32)  # noqa: E731  CIFAR rows are R plane, G plane, B plane
    return {"train": chw(train), "test": chw(test)}


def write_svhn(
    root: Path, monkeypatch, n_train: int = 30, n_test: int = 14
) -> dict[str, np.ndarray]:
    import scipy.io
    from torchvision.datasets import SVHN

    folder = root / "svhn"
    folder.mkdir(parents=True)
    split_list = dict(SVHN.split_list)
    out = {}
    for split, n, lo, hi in (
        ("train", n_train, 0, 128),
        ("test", n_test, 128, 256),
    ):  # disjoint values
        x = RNG.integers(
            lo, hi, (32, 32, 3, n), dtype=np.uint8
        )  # X [H, W, C, N] as in the real files
        y = RNG.integers(1, 11, (n, 1), dtype=np.uint8)  # labels 1..10 (10 = digit 0)
        url, fname, _ = SVHN.split_list[split]
        scipy.io.savemat(folder / fname, {"X": x, "y": y})
        split_list[split] = [url, fname, md5(folder / fname)]
        out[split] = x.transpose(3, 2, 0, 1)  # [N, C, H, W]
    monkeypatch.setattr(SVHN, "split_list", split_list)
    monkeypatch.setitem(
        data.SPLIT_COUNT_OVERRIDES, "svhn", {"train": n_train - 10, "val": 10, "test": n_test}
    )
    return out


CELEBA_ATTRS = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]
CELEBA_PARTITION = [0, 1, 2, 0, 0, 2, 1, 0, 2, 0, 0, 1]  # interleaved on purpose


def write_celeba(root: Path, monkeypatch) -> list[tuple[str, int]]:
    from PIL import Image
    from torchvision.datasets import CelebA

    folder = root / "celeba"
    img_dir = folder / "img_align_celeba"
    img_dir.mkdir(parents=True)
    rows = []
    yy, xx = np.mgrid[0:218, 0:178]
    for i, part in enumerate(CELEBA_PARTITION, start=1):
        name = f"{i:06d}.jpg"
        base = RNG.integers(0, 256, 3)
        img = np.stack([(base[c] + (c + 1) * i * xx // 3 + yy // 2) % 256 for c in range(3)], -1)
        Image.fromarray(img.astype(np.uint8)).save(img_dir / name, quality=90)  # 178 x 218
        rows.append((name, part))
    n = len(rows)
    files = {
        "list_eval_partition.txt": "".join(f"{f} {p}\n" for f, p in rows),
        "identity_CelebA.txt": "".join(f"{f} {1000 + i}\n" for i, (f, _) in enumerate(rows)),
        "list_bbox_celeba.txt": f"{n}\nimage_id x_1 y_1 width height\n"
        + "".join(f"{f}    95  71 226 313\n" for f, _ in rows),
        "list_landmarks_align_celeba.txt": f"{n}\nlefteye_x lefteye_y righteye_x righteye_y "
        "nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        + "".join(f"{f}    69  109  106  113   77  142   73  152  108  154\n" for f, _ in rows),
        "list_attr_celeba.txt": f"{n}\n{' '.join(CELEBA_ATTRS)} \n"
        + "".join(
            f + "".join(f" {'-1' if (i + k) % 3 else ' 1'}" for k in range(40)) + "\n"
            for i, (f, _) in enumerate(rows)
        ),
    }
    for fname, text in files.items():
        (folder / fname).write_text(text)
    file_list = [
        (fid, md5(folder / fname) if fname in files else digest, fname)
        for fid, digest, fname in CelebA.file_list
    ]
    monkeypatch.setattr(CelebA, "file_list", file_list)
    counts = [CELEBA_PARTITION.count(k) for k in range(3)]
    monkeypatch.setitem(
        data.SPLIT_COUNT_OVERRIDES,
        "celeba64",
        {"train": counts[0], "val": counts[1], "test": counts[2]},
    )
    return rows


def celeba_expected(path: Path) -> np.ndarray:
    """CenterCrop(140) + bilinear resize to 64, written out with PIL directly."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        top, left = int(round((h - 140) / 2.0)), int(round((w - 140) / 2.0))
        crop = im.crop((left, top, left + 140, top + 140)).resize(
            (64, 64), Image.Resampling.BILINEAR
        )
        return np.asarray(crop).transpose(2, 0, 1)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------


def test_registry_and_unknown_name():
    assert set(data.DATASETS) == {"mnist", "cifar10", "svhn", "celeba64", "photos"}
    assert data.dataset_info("mnist").splits == {"train": 50_000, "val": 10_000, "test": 10_000}
    assert data.dataset_info("cifar10").splits == {"train": 40_000, "val": 10_000, "test": 10_000}
    assert data.dataset_info("svhn").splits == {"train": 63_257, "val": 10_000, "test": 26_032}
    assert data.dataset_info("celeba64").splits == {"train": 162_770, "val": 19_867, "test": 19_962}
    assert (data.dataset_info("mnist").size, data.dataset_info("mnist").channels) == (32, 1)
    assert (data.dataset_info("celeba64").size, data.dataset_info("celeba64").channels) == (64, 3)
    for name in ("mnist", "cifar10", "svhn"):
        assert "seed 0" in data.DATASETS[name].description
    assert "28" in data.DATASETS["mnist"].description  # the QG-VAE code's 28x28 is noted
    with pytest.raises(DataError) as err:
        data.dataset_info("imagenet")
    assert "imagenet" in str(err.value) and "celeba64" in str(err.value)
    assert data.SPLIT_COUNT_OVERRIDES == {}  # production default: nothing overridden
    assert data.expected_counts("svhn") == data.DATASETS["svhn"].splits


# ------------------------------------------------------------------------------------------
# MNIST (idx.gz)
# ------------------------------------------------------------------------------------------


def test_mnist_whole_path(tmp_path, monkeypatch):
    src = write_mnist(tmp_path, monkeypatch)
    counts = data.expected_counts("mnist")
    folder = data.prepare("mnist", tmp_path, download=False)
    assert folder == tmp_path / "qgvae-cache" / "mnist"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["split_seed"] == 0 and manifest["counts_overridden"] is True
    assert {s["path"] for s in manifest["sources"]} == {
        f"MNIST/raw/{f}"
        for f in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    }
    assert all(s["md5"] == s["expected_md5"] for s in manifest["sources"])
    assert manifest["versions"]["torchvision"] and manifest["versions"]["numpy"]
    for split in data.SPLITS:
        entry = manifest["splits"][split]
        assert entry["shape"] == [counts[split], 1, 32, 32]
        assert entry["sha256"] == hashlib.sha256((folder / f"{split}.npy").read_bytes()).hexdigest()

    train, val, test = (data.load_split("mnist", tmp_path, s) for s in data.SPLITS)
    assert train.dtype == torch.uint8 and train.device.type == "cpu"
    assert tuple(train.shape) == (counts["train"], 1, 32, 32)
    assert tuple(val.shape) == (counts["val"], 1, 32, 32)
    val_idx = np.load(folder / "val_indices.npy")
    train_idx = np.setdiff1d(np.arange(len(src["train"])), val_idx)
    expect = np.stack([pil_resize(im, 32) for im in src["train"]])[:, None]
    np.testing.assert_array_equal(val.numpy(), expect[val_idx])
    np.testing.assert_array_equal(train.numpy(), expect[train_idx])
    np.testing.assert_array_equal(
        test.numpy(), np.stack([pil_resize(im, 32) for im in src["test"]])[:, None]
    )
    # the carve is the documented seeded permutation
    np.testing.assert_array_equal(
        val_idx,
        np.sort(
            np.random.Generator(np.random.PCG64(0)).permutation(len(src["train"]))[: counts["val"]]
        ),
    )
    assert data.verify("mnist", tmp_path)["ok"]
    assert no_temp_files(tmp_path)

    loader = DeviceLoader(train, batch_size=9, seed=0, shuffle=True, drop_last=False)
    seen = torch.cat(list(loader))
    assert seen.dtype == torch.float32 and seen.shape == (counts["train"], 1, 32, 32)
    assert float(seen.min()) >= 0.0 and float(seen.max()) <= 1.0
    got = sorted(map(bytes, (seen * 255).round().to(torch.uint8).flatten(1).numpy()))
    assert got == sorted(map(bytes, train.flatten(1).numpy()))


def test_prepare_keeps_valid_cache_and_rebuilds_corrupt_one(tmp_path, monkeypatch):
    write_mnist(tmp_path, monkeypatch)
    folder = data.prepare("mnist", tmp_path, download=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert data.prepare("mnist", tmp_path, download=False) == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps  # kept untouched

    path = folder / "train.npy"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError) as err:
        data.load_split("mnist", tmp_path, "train")
    msg = str(err.value)
    assert (
        str(path) in msg
        and "sha256" in msg
        and f"qgvae prepare-data mnist --root {tmp_path}" in msg
    )
    report = data.verify("mnist", tmp_path)
    assert (
        not report["ok"] and not report["splits"]["train"]["ok"] and report["splits"]["val"]["ok"]
    )
    data.prepare("mnist", tmp_path, download=False)  # rebuilds
    assert data.verify("mnist", tmp_path)["ok"]
    data.load_split("mnist", tmp_path, "train")


def test_failed_rebuild_leaves_no_valid_looking_cache(tmp_path, monkeypatch):
    write_mnist(tmp_path, monkeypatch)
    folder = data.prepare("mnist", tmp_path, download=False)
    (folder / "test.npy").write_bytes(b"garbage")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(data.mnist, "resize_stack", boom)
    with pytest.raises(KeyboardInterrupt):
        data.prepare("mnist", tmp_path, download=False)
    assert not (folder / "manifest.json").exists()  # manifest removed before rebuilding
    assert no_temp_files(tmp_path)
    with pytest.raises(DataError, match="prepare-data mnist"):
        data.load_split("mnist", tmp_path, "val")


def test_load_split_missing_cache_and_wrong_shape(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        data.load_split("mnist", tmp_path, "train")
    assert "manifest.json" in str(err.value) and "qgvae prepare-data mnist" in str(err.value)
    with pytest.raises(DataError, match="unknown split"):
        data.load_split("mnist", tmp_path, "training")

    write_mnist(tmp_path, monkeypatch)
    folder = data.prepare("mnist", tmp_path, download=False)
    # a consistent-looking but wrongly shaped file: hash matches the (edited) manifest
    np.save(folder / "val.npy", np.zeros((3, 1, 28, 28), np.uint8))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["splits"]["val"]["sha256"] = hashlib.sha256(
        (folder / "val.npy").read_bytes()
    ).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError) as err:
        data.load_split("mnist", tmp_path, "val")
    assert "val.npy" in str(err.value) and "[3, 1, 28, 28]" in str(err.value)
    (folder / "test.npy").unlink()
    with pytest.raises(DataError) as err:
        data.load_split("mnist", tmp_path, "test")
    assert "test.npy" in str(err.value) and "missing" in str(err.value)


def test_mnist_corrupt_and_missing_sources_are_named(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    write_mnist(tmp_path, monkeypatch)
    raw = tmp_path / "MNIST" / "raw"
    gz = raw / "train-images-idx3-ubyte.gz"
    expected = dict(MNIST.resources)["train-images-idx3-ubyte.gz"]
    gz.write_bytes(gz.read_bytes()[:-100])  # truncated download
    for download in (False, True):  # a corrupt file is never silently re-downloaded
        with pytest.raises(DataError) as err:
            data.prepare("mnist", tmp_path, download=download)
        msg = str(err.value)
        assert str(gz) in msg and expected in msg and "corrupt" in msg
        assert "ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in msg
    assert not (tmp_path / "qgvae-cache").exists()  # nothing started

    gz.unlink()
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        data.prepare("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert (
        "train-images-idx3-ubyte.gz: missing" in msg and "t10k-labels-idx1-ubyte.gz: missing" in msg
    )
    assert "MNIST/raw/" in msg


def test_mnist_failed_download_explains_manual_placement(tmp_path, monkeypatch):
    from urllib.error import URLError

    from torchvision.datasets import utils as tvu

    write_mnist(tmp_path, monkeypatch)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").unlink()
    calls = []

    def offline(url, root, filename=None, md5=None, **kw):  # no network in tests
        calls.append(url)
        raise URLError("Temporary failure in name resolution")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(DataError) as err:
        data.prepare("mnist", tmp_path, download=True)
    msg = str(err.value)
    assert len(calls) == 2 and all(
        u.endswith("t10k-images-idx3-ubyte.gz") for u in calls
    )  # both mirrors
    assert (
        "t10k-images-idx3-ubyte.gz" in msg and "download failed" in msg and "--no-download" in msg
    )
    assert "name resolution" in msg


def test_split_counts_are_checked_and_overrides_recorded(tmp_path, monkeypatch):
    write_mnist(tmp_path, monkeypatch, n_train=60)
    monkeypatch.setitem(data.SPLIT_COUNT_OVERRIDES, "mnist", {"train": 50, "val": 20, "test": 12})
    with pytest.raises(DataError) as err:
        data.prepare("mnist", tmp_path, download=False)
    assert "60 images, expected 70" in str(err.value) and "train-images-idx3-ubyte" in str(
        err.value
    )

    monkeypatch.setitem(data.SPLIT_COUNT_OVERRIDES, "mnist", {"train": 45, "val": 15, "test": 12})
    data.prepare("mnist", tmp_path, download=False)
    data.load_split("mnist", tmp_path, "train")
    # without the override (production) the test-sized cache is rejected, not silently used
    monkeypatch.delitem(data.SPLIT_COUNT_OVERRIDES, "mnist")
    assert not data.verify("mnist", tmp_path)["ok"]
    with pytest.raises(DataError, match="50000"):
        data.load_split("mnist", tmp_path, "train")


# ------------------------------------------------------------------------------------------
# CIFAR-10 (pickled batches)
# ------------------------------------------------------------------------------------------


def test_cifar10_batches_whole_path(tmp_path, monkeypatch):
    src = write_cifar(tmp_path, monkeypatch)
    with open(
        tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb"
    ) as fh:  # the documented format
        entry = pickle.load(fh, encoding="bytes")
    assert (
        entry[b"data"].dtype == np.uint8
        and entry[b"data"].shape == (8, 3072)
        and b"labels" in entry
    )
    folder = data.prepare("cifar10", tmp_path, download=False)
    train, val, test = (data.load_split("cifar10", tmp_path, s).numpy() for s in data.SPLITS)
    val_idx = np.load(folder / "val_indices.npy")
    train_idx = np.setdiff1d(np.arange(40), val_idx)
    np.testing.assert_array_equal(val, src["train"][val_idx])
    np.testing.assert_array_equal(train, src["train"][train_idx])
    np.testing.assert_array_equal(test, src["test"])
    assert (
        train.shape == (24, 3, 32, 32)
        and val.shape == (16, 3, 32, 32)
        and test.shape == (10, 3, 32, 32)
    )
    batches = list(
        DeviceLoader(torch.from_numpy(test), batch_size=4, seed=3, shuffle=False, drop_last=False)
    )
    np.testing.assert_array_equal(torch.cat(batches).numpy(), test.astype(np.float32) / 255.0)


def test_cifar10_from_archive_only(tmp_path, monkeypatch):
    src = write_cifar(tmp_path, monkeypatch, archive_only=True)
    assert not (tmp_path / "cifar-10-batches-py").exists()
    data.prepare(
        "cifar10", tmp_path, download=False
    )  # extracts the (MD5-checked) archive, no network
    np.testing.assert_array_equal(data.load_split("cifar10", tmp_path, "test").numpy(), src["test"])
    manifest = json.loads((tmp_path / "qgvae-cache" / "cifar10" / "manifest.json").read_text())
    assert "cifar-10-python.tar.gz" in {s["path"] for s in manifest["sources"]}


def test_cifar10_corrupt_batch_is_named(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    write_cifar(tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    expected = dict(CIFAR10.train_list)["data_batch_3"]
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DataError) as err:
        data.prepare("cifar10", tmp_path, download=False)
    msg = str(err.value)
    assert str(path) in msg and expected in msg and CIFAR10.url in msg
    assert "cifar-10-python.tar.gz" in msg


# ------------------------------------------------------------------------------------------
# SVHN (.mat)
# ------------------------------------------------------------------------------------------


def test_svhn_uses_the_real_test_file(tmp_path, monkeypatch):
    src = write_svhn(tmp_path, monkeypatch)
    folder = data.prepare("svhn", tmp_path, download=False)
    train, val, test = (data.load_split("svhn", tmp_path, s).numpy() for s in data.SPLITS)
    np.testing.assert_array_equal(test, src["test"])  # from test_32x32.mat, not the train file
    assert test.min() >= 128 and train.max() < 128
    val_idx = np.load(folder / "val_indices.npy")
    np.testing.assert_array_equal(val, src["train"][val_idx])
    np.testing.assert_array_equal(train, src["train"][np.setdiff1d(np.arange(30), val_idx)])
    assert (train.shape, val.shape, test.shape) == (
        (20, 3, 32, 32),
        (10, 3, 32, 32),
        (14, 3, 32, 32),
    )


def test_svhn_truncated_mat_is_named(tmp_path, monkeypatch):
    from torchvision.datasets import SVHN

    write_svhn(tmp_path, monkeypatch)
    path = tmp_path / "svhn" / "test_32x32.mat"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        data.prepare("svhn", tmp_path, download=True)
    msg = str(err.value)
    assert (
        str(path) in msg and SVHN.split_list["test"][2] in msg and SVHN.split_list["test"][0] in msg
    )
    assert "train_32x32.mat" not in msg.split("Expected layout")[0]  # only the bad file is listed
    assert not (tmp_path / "qgvae-cache").exists()


# ------------------------------------------------------------------------------------------
# CelebA (JPEG folder + list files)
# ------------------------------------------------------------------------------------------


def test_celeba_official_partition_and_crop(tmp_path, monkeypatch):
    rows = write_celeba(tmp_path, monkeypatch)
    data.prepare("celeba64", tmp_path, download=False, workers=0)
    for split, part in (("train", 0), ("val", 1), ("test", 2)):
        got = data.load_split("celeba64", tmp_path, split)
        names = [f for f, p in rows if p == part]
        assert got.dtype == torch.uint8 and tuple(got.shape) == (len(names), 3, 64, 64)
        expect = np.stack(
            [celeba_expected(tmp_path / "celeba" / "img_align_celeba" / f) for f in names]
        )
        np.testing.assert_array_equal(got.numpy(), expect)
    manifest = json.loads((tmp_path / "qgvae-cache" / "celeba64" / "manifest.json").read_text())
    assert manifest["images"]["count"] == len(rows)
    assert "celeba/list_eval_partition.txt" in {s["path"] for s in manifest["sources"]}


def test_celeba_missing_partition_file_is_named(tmp_path, monkeypatch):
    write_celeba(tmp_path, monkeypatch)
    path = tmp_path / "celeba" / "list_eval_partition.txt"
    path.unlink()
    with pytest.raises(DataError) as err:
        data.prepare("celeba64", tmp_path, download=False)
    msg = str(err.value)
    assert (
        f"{path}: missing" in msg and "img_align_celeba/" in msg and "mmlab.ie.cuhk.edu.hk" in msg
    )


def test_celeba_failed_download_explains_layout(tmp_path, monkeypatch):
    import torchvision.datasets.celeba as tv_celeba

    write_celeba(tmp_path, monkeypatch)
    shutil.rmtree(tmp_path / "celeba" / "img_align_celeba")

    def no_drive(*args, **kwargs):
        raise RuntimeError("Google Drive quota exceeded")

    monkeypatch.setattr(tv_celeba, "download_file_from_google_drive", no_drive)
    with pytest.raises(DataError) as err:
        data.prepare("celeba64", tmp_path, download=True)
    msg = str(err.value)
    assert "img_align_celeba: missing" in msg and "quota exceeded" in msg
    for fname in (
        "list_eval_partition.txt",
        "list_attr_celeba.txt",
        "identity_CelebA.txt",
        "list_bbox_celeba.txt",
        "list_landmarks_align_celeba.txt",
        "000001.jpg",
    ):
        assert fname in msg

    (tmp_path / "celeba" / "img_align_celeba").mkdir()  # folder there but images missing
    with pytest.raises(DataError, match="000001.jpg"):
        data.prepare("celeba64", tmp_path, download=False)


# ------------------------------------------------------------------------------------------
# photos (scikit-image's bundled photographs)
# ------------------------------------------------------------------------------------------


def test_photos_offline_deterministic_and_held_out(tmp_path):
    assert not set(data.PHOTOS_TEST) & set(data.PHOTOS_TRAIN)
    a = data.prepare("photos", tmp_path / "a")
    b = data.prepare("photos", tmp_path / "b")
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    for split in data.SPLITS:
        assert ma["splits"][split]["sha256"] == mb["splits"][split]["sha256"]
        assert ma["splits"][split]["count"] == data.DATASETS["photos"].splits[split]
    # the held-out photographs are different files from every training photograph
    by_name = {Path(s["path"]).name: s["md5"] for s in ma["sources"]}
    assert not {by_name[f] for f in data.PHOTOS_TEST} & {by_name[f] for f in data.PHOTOS_TRAIN}
    assert ma["photos"]["test"] == list(data.PHOTOS_TEST)
    train, val, test = (data.load_split("photos", tmp_path / "a", s) for s in data.SPLITS)
    assert train.shape[1:] == (3, 32, 32) and train.dtype == torch.uint8
    rows = lambda t: set(map(bytes, t.flatten(1).numpy()))  # noqa: E731
    assert not rows(test) & rows(train) and not rows(val) & rows(train)
    assert train.float().std() > 20  # real image content, not constant


# ------------------------------------------------------------------------------------------
# DeviceLoader
# ------------------------------------------------------------------------------------------

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
        ],
    ),
]


def images(n=103, c=1, s=4, device="cpu"):
    # image i carries its index in its first two pixels (low byte, high byte)
    x = torch.zeros(n, c, s, s, dtype=torch.uint8, device=device)
    x[:, 0, 0, 0] = (torch.arange(n) % 256).to(torch.uint8)
    x[:, 0, 0, 1] = (torch.arange(n) // 256).to(torch.uint8)
    return x


def ids(batch):
    b = (batch * 255).round().long()
    return (b[:, 0, 0, 0] + 256 * b[:, 0, 0, 1]).tolist()


def run(loader, n_batches):
    out = []
    while len(out) < n_batches:
        for batch in loader:
            out.append(ids(batch))
            if len(out) == n_batches:
                break
    return out


@pytest.mark.parametrize("device", DEVICES)
def test_loader_covers_every_image_once_per_epoch(device):
    x = images(103, device=device)
    loader = DeviceLoader(x, batch_size=10, seed=0, shuffle=True, drop_last=False)
    assert len(loader) == 11
    for epoch in range(3):
        assert loader.epoch == epoch
        seen = [i for b in loader for i in ids(b)]
        assert sorted(seen) == list(range(103))
    dl = DeviceLoader(x, batch_size=10, seed=0, shuffle=True, drop_last=True)
    assert len(dl) == 10
    batches = list(dl)
    assert all(len(b) == 10 for b in batches)
    flat = [i for b in batches for i in ids(b)]
    assert len(set(flat)) == 100


@pytest.mark.parametrize("device", DEVICES)
def test_loader_permutations_depend_on_seed_and_epoch(device):
    x = images(64, device=device)
    a = run(DeviceLoader(x, batch_size=8, seed=0), 16)
    b = run(DeviceLoader(x, batch_size=8, seed=0), 16)
    c = run(DeviceLoader(x, batch_size=8, seed=1), 16)
    assert a == b
    assert a != c
    assert a[:8] != a[8:]  # epoch 0 vs epoch 1
    assert [i for b in a[:8] for i in b] != list(range(64))  # actually shuffled
    plain = run(DeviceLoader(x, batch_size=8, seed=0, shuffle=False), 8)
    assert [i for b in plain for i in b] == list(range(64))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("stop_at", [3, 7, 8, 11, 16])  # mid-epoch, last batch, epoch end, later
def test_loader_resume_reproduces_remaining_batches(stop_at, device):
    x = images(90, device=device)
    full = run(DeviceLoader(x, batch_size=11, seed=5), 30)  # 8 batches per epoch, 2 images dropped
    first = DeviceLoader(x, batch_size=11, seed=5)
    head = run(first, stop_at)
    state = json.loads(json.dumps(first.state_dict()))  # survives a JSON checkpoint
    resumed = DeviceLoader(x, batch_size=11, seed=5)
    resumed.load_state_dict(state)
    assert (resumed.epoch, resumed.batch_index) == (first.epoch, first.batch_index)
    assert head + run(resumed, 30 - stop_at) == full
    assert (stop_at // 8, stop_at % 8) == (state["epoch"], state["batch_index"])


@pytest.mark.parametrize("device", DEVICES)
def test_loader_values_and_validation(device):
    x = torch.randint(0, 256, (20, 3, 5, 5), dtype=torch.uint8, device=device)
    x[0] = 0
    x[1] = 255
    loader = DeviceLoader(x, batch_size=20, seed=0, shuffle=False)
    (batch,) = list(loader)
    assert batch.dtype == torch.float32 and batch.device == x.device
    assert float(batch.min()) == 0.0 and float(batch.max()) == 1.0
    torch.testing.assert_close(batch, x.float() / 255, rtol=0, atol=0)
    with pytest.raises(TypeError):
        DeviceLoader(x.float(), batch_size=4, seed=0)
    with pytest.raises(ValueError):
        DeviceLoader(x, batch_size=21, seed=0, drop_last=True)
    other = DeviceLoader(x, batch_size=4, seed=1)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(DeviceLoader(x, batch_size=4, seed=0).state_dict())


# ------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------


def test_cli_prepare_and_verify(tmp_path, monkeypatch, capsys):
    from qgvae.cli import main

    with pytest.raises(SystemExit):
        main(["prepare-data", "--help"])
    helptext = capsys.readouterr().out
    for word in ("--root", "--no-download", "celeba64", "list_eval_partition.txt", "MNIST/raw"):
        assert word in helptext

    write_mnist(tmp_path, monkeypatch)
    assert main(["prepare-data", "mnist", "--root", str(tmp_path), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "train" in out and "val" in out and "sha256" in out and "qgvae-cache" in out

    assert main(["verify-data", "mnist", "--root", str(tmp_path)]) == 0
    (tmp_path / "qgvae-cache" / "mnist" / "val.npy").write_bytes(b"x")
    assert main(["verify-data", "mnist", "--root", str(tmp_path)]) == 1
    assert "val.npy" in capsys.readouterr().err

    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    assert main(["prepare-data", "mnist", "--root", str(tmp_path), "--no-download"]) == 2
    assert "train-labels-idx1-ubyte.gz: missing" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# real MNIST
# ------------------------------------------------------------------------------------------


def read_idx_gz(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    magic, n = struct.unpack(">II", raw[:8])
    assert magic == 0x0803
    rows, cols = struct.unpack(">II", raw[8:16])
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, rows, cols)


@pytest.mark.realdata
def test_real_mnist_whole_path(tmp_path):
    root = os.environ.get("QGVAE_DATA_ROOT")
    if not root:
        pytest.skip(
            "QGVAE_DATA_ROOT is not set (point it at a folder holding MNIST/raw/*.gz, "
            "e.g. ../shared/data)"
        )
    raw = Path(root) / "MNIST" / "raw"
    if not raw.is_dir():
        pytest.skip(f"QGVAE_DATA_ROOT={root} has no MNIST/raw folder")
    dest = tmp_path / "MNIST" / "raw"
    dest.mkdir(parents=True)
    for f in raw.glob("*.gz"):
        shutil.copyfile(f, dest / f.name)
    t0 = time.perf_counter()
    folder = data.prepare("mnist", tmp_path, download=False)
    print(f"real MNIST prepare: {time.perf_counter() - t0:.1f} s")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert all(s["md5"] == s["expected_md5"] for s in manifest["sources"])  # torchvision's MD5s
    assert manifest["counts_overridden"] is False
    train, val, test = (data.load_split("mnist", tmp_path, s) for s in data.SPLITS)
    assert (len(train), len(val), len(test)) == (50_000, 10_000, 10_000)
    assert train.shape[1:] == (1, 32, 32)

    idx_train = read_idx_gz(dest / "train-images-idx3-ubyte.gz")
    idx_test = read_idx_gz(dest / "t10k-images-idx3-ubyte.gz")
    val_idx = np.load(folder / "val_indices.npy")
    train_idx = np.setdiff1d(np.arange(60_000), val_idx)
    resized = np.stack([pil_resize(im, 32) for im in idx_train])[:, None]
    np.testing.assert_array_equal(val.numpy(), resized[val_idx])
    np.testing.assert_array_equal(train.numpy(), resized[train_idx])
    np.testing.assert_array_equal(
        test.numpy(), np.stack([pil_resize(im, 32) for im in idx_test])[:, None]
    )
    assert data.verify("mnist", tmp_path)["ok"]

    loader = DeviceLoader(train, batch_size=32, seed=0)
    assert len(loader) == 50_000 // 32
    batch = next(iter(loader))
    assert (
        batch.shape == (32, 1, 32, 32) and float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    )
