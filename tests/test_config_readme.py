"""config/README.md documents every key of the workflow and run-config schemas."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_every_schema_key_is_documented():
    readme = (REPO / "config" / "README.md").read_text()
    workflow = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    run = json.loads((REPO / "qgvae" / "schemas" / "run.schema.json").read_text())
    keys = set(workflow["properties"])
    keys |= set(workflow["$defs"]["method_entry"]["properties"])
    keys |= set(workflow["$defs"]["job_resources"]["properties"])
    keys |= set(run["properties"]["train"]["properties"]) | set(
        run["properties"]["eval"]["properties"]
    )
    missing = sorted(k for k in keys if f"`{k}`" not in readme)
    assert not missing, f"config/README.md does not document {missing}"
