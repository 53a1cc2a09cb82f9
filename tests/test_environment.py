"""pyproject.toml and environment.yml must list the same dependencies with the same bounds."""

from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return set(data["dependencies"]) | set(data["optional-dependencies"]["test"])


def _conda() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {p for p in pip if not p.startswith("-e")}


def test_dependency_lists_agree():
    py, conda = _pyproject(), _conda()
    assert py == conda, (
        f"only in pyproject: {sorted(py - conda)}; only in environment.yml: {sorted(conda - py)}"
    )


def test_environment_installs_the_project():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "-e ." in pip
