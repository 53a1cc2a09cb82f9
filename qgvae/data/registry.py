"""The datasets the harness knows: one :class:`~qgvae.data.recipe.Recipe` per module."""

from __future__ import annotations

from ..errors import DataError
from . import celeba64, cifar10, mnist, photos, svhn
from .recipe import SPLIT_COUNT_OVERRIDES, SPLITS, DatasetInfo, Recipe

RECIPES: dict[str, Recipe] = {
    r.info.name: r
    for r in (mnist.RECIPE, cifar10.RECIPE, svhn.RECIPE, celeba64.RECIPE, photos.RECIPE)
}
DATASETS: dict[str, DatasetInfo] = {name: r.info for name, r in RECIPES.items()}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        ) from None


def expected_counts(name: str) -> dict[str, int]:
    """The split counts a prepared cache must have (DATASETS, unless a test overrides them)."""
    info = dataset_info(name)
    counts = SPLIT_COUNT_OVERRIDES.get(name, info.splits)
    if set(counts) != set(SPLITS) or any(int(v) < 1 for v in counts.values()):
        raise DataError(
            f"split counts for {name!r} must give a positive count for each of "
            f"{SPLITS}; got {counts}"
        )
    return {s: int(counts[s]) for s in SPLITS}


def source_layout(name: str) -> str:
    """Where ``name``'s source files go under the data root (text for help and messages)."""
    return RECIPES[dataset_info(name).name].layout


def display_name(name: str) -> str:
    """How tables and figures name dataset ``name``."""
    return dataset_info(name).display_name or name
