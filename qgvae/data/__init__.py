"""Datasets: a registry of recipes, a verified uint8 cache, and device-resident loaders.

Every dataset goes through the same two steps.

1. ``prepare(name, root)`` (CLI: ``qgvae prepare-data NAME --root ROOT``) checks the source
   files against the checksums that torchvision itself uses (read from torchvision's classes at
   call time), downloads missing ones through torchvision when allowed, and fails with a
   :class:`DataError` naming the file, the expected checksum and how to obtain it *before* any
   processing starts. It then parses the sources with torchvision, applies the fixed
   preprocessing (resize / crop) and writes ``ROOT/qgvae-cache/NAME/`` (:mod:`.cache`). A cache
   that passes :func:`verify` is kept as it is (``prepare`` is idempotent).
2. ``load_split(name, root, split)`` returns the cached split as a uint8 CPU tensor after
   re-checking its sha256 and shape; :class:`DeviceLoader` batches such a tensor once it lives
   on the training device.

Modules
-------
``recipe``    what a dataset recipe is, and the helpers recipes share (checksums, downloads)
``mnist`` ``cifar10`` ``svhn`` ``celeba64`` ``photos``   one recipe each: info, sources, build
``registry``  name -> recipe; ``DATASETS``, ``dataset_info``, ``expected_counts``
``writer``    the cache writer recipes write through (it never imports the registry)
``cache``     ``prepare``, ``verify``, ``load_split`` (registry -> recipe -> writer)
``loader``    ``DeviceLoader``

Source layout under ROOT (what torchvision expects)::

    mnist     ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    cifar10   ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
              (or ROOT/cifar-10-python.tar.gz, which is extracted)
    svhn      ROOT/svhn/{train_32x32.mat,test_32x32.mat}
    celeba64  ROOT/celeba/img_align_celeba/*.jpg + ROOT/celeba/list_*.txt, identity_CelebA.txt
    photos    nothing: scikit-image's bundled photographs (installed with the package)

Split counts are fixed in each recipe's ``INFO`` and checked after parsing and after writing.
Tests that write tiny files in the real formats set :data:`SPLIT_COUNT_OVERRIDES` (normally
through pytest's ``monkeypatch``); the manifest records the counts a cache was built for, so a
cache built under an override never passes :func:`verify` / :func:`load_split` without it.
"""

from importlib import import_module

from ..errors import DataError
from .photos import PHOTOS_TEST, PHOTOS_TRAIN
from .recipe import SPLIT_COUNT_OVERRIDES, SPLIT_SEED, SPLITS, DatasetInfo
from .registry import DATASETS, dataset_info, display_name, expected_counts, source_layout

# the cache and the loader need torch: imported on first use (tables and figures do not)
_LAZY = {
    "CACHE_DIRNAME": "cache",
    "cache_dir": "cache",
    "load_split": "cache",
    "prepare": "cache",
    "verify": "cache",
    "DeviceLoader": "loader",
}

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetInfo",
    "PHOTOS_TEST",
    "PHOTOS_TRAIN",
    "SPLITS",
    "SPLIT_COUNT_OVERRIDES",
    "SPLIT_SEED",
    "dataset_info",
    "display_name",
    "expected_counts",
    "source_layout",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    if name in ("mnist", "cifar10", "svhn", "celeba64", "photos", "cache", "loader"):
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
