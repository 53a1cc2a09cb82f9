"""Display names of the plan's methods and datasets: those ``build_plan`` recorded in the plan
(``plan["names"]``), else from the registries.

A method's name is its class's ``display_name`` (``qgvae.methods.display_name``, with the class
a run config's ``method_class`` names, if any); a dataset's is ``qgvae.data.display_name``.
Unknown keys are shown as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..data import display_name as registry_dataset_name
from ..errors import DataError
from ..methods import display_name as method_display_name


def plan_methods(plan: Mapping[str, Any]) -> dict[str, str | None]:
    """``{method: method_class or None}`` in the order methods first appear in the plan
    (its tables' cells, then its runs)."""
    runs = plan.get("runs") or {}
    specs: dict[str, str | None] = {}
    for info in runs.values():
        spec = (info.get("config") or {}).get("method_class")
        if info.get("method") and specs.get(info["method"]) is None:
            specs[info["method"]] = spec
    order = [c["method"] for cells in (plan.get("tables") or {}).values() for c in cells]
    order += list(specs)
    return {m: specs.get(m) for m in dict.fromkeys(order)}


def plan_datasets(plan: Mapping[str, Any]) -> list[str]:
    cells = [c for cells in (plan.get("tables") or {}).values() for c in cells]
    runs = (plan.get("runs") or {}).values()
    return list(dict.fromkeys([c["dataset"] for c in cells] + [r["dataset"] for r in runs]))


def dataset_display_name(dataset: str) -> str:
    try:
        return registry_dataset_name(dataset)
    except DataError:
        return dataset


@dataclass(frozen=True)
class Names:
    """``{key: display name}`` of methods (in plan order) and datasets."""

    methods: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan: Mapping[str, Any]) -> Names:
        recorded = plan.get("names") or {}  # build_plan records them: no model code needed
        if recorded.get("methods") is not None and recorded.get("datasets") is not None:
            methods = {m: recorded["methods"].get(m, m) for m in plan_methods(plan)}
            return cls(methods=methods, datasets=dict(recorded["datasets"]))
        return cls(
            methods={m: method_display_name(m, spec) for m, spec in plan_methods(plan).items()},
            datasets={d: dataset_display_name(d) for d in plan_datasets(plan)},
        )

    def method(self, method: str) -> str:
        if method in self.methods:
            return self.methods[method]
        if method == "mean_image":
            return "Mean image"
        return method_display_name(method)

    def dataset(self, dataset: str) -> str:
        if dataset in self.datasets:
            return self.datasets[dataset]
        return dataset_display_name(dataset)
