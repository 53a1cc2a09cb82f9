# Configuration, the run plan, and the helpers every rule file uses. No rules live here.
#
# The plan comes from qgvae.experiments.build_plan(config): it decides which runs exist, which
# folder each lives in (results/<dataset>/<method>/<variant>/seed<k>/) and which runs fill which
# table cell. This file only turns it into file names; it never decides runs itself.
import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from qgvae.config import ConfigError
from qgvae.experiments import build_plan, runs_for
from qgvae.utils import write_text


# ---- configuration -------------------------------------------------------------------------
# Strict schema first (unknown keys and wrong types fail here, naming the key), then the plan
# (unknown methods, datasets and model keys fail there, naming the key). Both happen while the
# Snakefile is parsed, so nothing runs with a bad config.
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as exc:
    # One line naming the key, instead of the schema dump (the error is the raise's context).
    err = exc.__context__
    if not hasattr(err, "absolute_path"):
        raise
    where = ".".join(str(part) for part in err.absolute_path) or "<top level>"
    raise WorkflowError(f"Invalid workflow configuration at '{where}': {err.message}") from None

try:
    PLAN = build_plan(config)
except ConfigError as exc:
    raise WorkflowError(f"Invalid workflow configuration: {exc}") from None

RESULTS = PLAN["results"]
RUNS = PLAN["runs"]
TABLES = PLAN["tables"]
DATA_ROOT = config["data_root"]
PAPER_VALUES = config["paper_values"]
RESOURCES = config["resources"]
REPORTS = "reports"

# Software: every rule calls the `qgvae` command of the project's environment (README install;
# run Snakemake from it). The conda directive documents that environment (environment.yml at
# the repository root); for `--sdm conda` it would also have to install this package.
ENV = "../../environment.yml"

# Figures `qgvae figures --only NAME` draws from the whole plan.
SUMMARY_FIGURES = [
    "progressive",
    "token_influence",
    "code_usage",
    "training_curves",
    "rate_distortion",
]
TABLE1_DATASETS = sorted({cell["dataset"] for cell in TABLES.get("table1", [])})
ABLATION_AXES = [t[len("ablation_") :] for t in TABLES if t.startswith("ablation_")]
FIGURES = (
    [f"recon_grid_{d}" for d in TABLE1_DATASETS]
    + SUMMARY_FIGURES
    + [f"ablation_{axis}" for axis in ABLATION_AXES]
)


def _alternatives(names):
    return "|".join(re.escape(str(n)) for n in sorted(names)) or "(?!)"


wildcard_constraints:
    dataset=_alternatives(config["datasets"]),
    method=_alternatives(config["methods"]),
    variant="[^/]+",
    seed=r"\d+",
    table=_alternatives(TABLES),
    axis=_alternatives(ABLATION_AXES),
    figure=_alternatives(SUMMARY_FIGURES),


# ---- runs ----------------------------------------------------------------------------------
# One pattern for a run folder; wildcards dataset/method/variant/seed are exactly the parts of
# build_plan's folder names.
RUN = f"{RESULTS}/{{dataset}}/{{method}}/{{variant}}/seed{{seed}}"
RUN_KEY = "{dataset}/{method}/{variant}/seed{seed}"  # for log and benchmark paths


def run_dir(wildcards):
    return RUN.format(**wildcards)


def run_config(wildcards):
    """The resolved run config of the run named by the wildcards (from the plan)."""
    path = run_dir(wildcards)
    if path not in RUNS:
        raise WorkflowError(
            f"{path} is not a run of the current plan (config changed?); "
            f"run folders are listed in {RESULTS}/plan.json"
        )
    return RUNS[path]["config"]


def train_config_json(wildcards):
    """The run config given to `qgvae train`, without its `eval` section.

    Evaluation settings reach reconstruct/evaluate as command-line flags (below), so changing
    them re-runs those steps only; with `eval` in here, the params rerun trigger would retrain.
    sort_keys: the trigger compares this string, so it must be canonical.
    """
    cfg = {key: value for key, value in run_config(wildcards).items() if key != "eval"}
    return json.dumps(cfg, sort_keys=True)


def run_manifest(wildcards):
    return f"{DATA_ROOT}/qgvae-cache/{wildcards.dataset}/manifest.json"


def reconstruct_args(wildcards):
    """`qgvae reconstruct` flags from the run's eval settings."""
    ev = run_config(wildcards)["eval"]
    args = [f"--batch-size {ev['batch_size']}"]
    if ev["test_n"] is not None:
        args.append(f"--test-n {ev['test_n']}")
    return " ".join(args)


def evaluate_args(wildcards):
    """`qgvae evaluate` flags from the run's eval settings."""
    ev = run_config(wildcards)["eval"]
    args = [f"--batch-size {ev['batch_size']}", "--protocols " + " ".join(ev["protocols"]),
            # the test originals' Inception statistics, shared by every method on a dataset
            f"--stats-cache {RESULTS}/.fid-stats"]
    if ev["fid_n"] is not None:
        args.append(f"--fid-n {ev['fid_n']}")
    return " ".join(args)


def run_files(runs, *names):
    """Files ``names`` inside every run folder of ``runs``."""
    return [f"{run}/{name}" for run in runs for name in names]


# Everything a table or a figure reads from a run folder.
RUN_OUTPUTS = ("metrics.json", "reconstructions.npz", "analysis.npz")


# ---- plans of single tables ------------------------------------------------------------------
def table_runs(table):
    """Run folders of exactly one table (runs_for matches table-name prefixes)."""
    return runs_for({"tables": {table: TABLES[table]}})


def subplan(table):
    """The plan restricted to one table and its runs (same structure as build_plan's)."""
    return {
        "results": RESULTS,
        "seeds": PLAN["seeds"],
        "runs": {path: RUNS[path] for path in table_runs(table)},
        "tables": {table: TABLES[table]},
    }


def subplan_json(wildcards):
    return json.dumps(subplan(wildcards.table), indent=1)


def write_plan(path, text, log):
    """Write a plan (JSON text) atomically and note it in the rule's log."""
    write_text(path, f"{text}\n")
    write_text(log, f"wrote {path}: {len(json.loads(text)['runs'])} runs\n")


def plan_file(table=None):
    return f"{RESULTS}/plan.json" if table is None else f"{RESULTS}/plans/{table}.json"


# ---- tables, figures, targets ----------------------------------------------------------------
def table_file(table):
    return f"{REPORTS}/targets/{table}/tables.tex"


def figure_files(name):
    return [f"{REPORTS}/figures/{name}.{ext}" for ext in ("pdf", "png", "json")]


def table_metrics(wildcards):
    return run_files(table_runs(wildcards.table), "metrics.json")


def recon_grid_inputs(wildcards):
    runs = [
        path
        for path in table_runs("table1")
        if RUNS[path]["dataset"] == wildcards.dataset
    ]
    return run_files(runs, *RUN_OUTPUTS)


def ablation_figure_inputs(wildcards):
    return run_files(table_runs(f"ablation_{wildcards.axis}"), *RUN_OUTPUTS)


def target_files(table):
    """Files built by the target of one table (its runs' metrics, its table, its figure)."""
    if table not in TABLES:
        return []
    files = run_files(table_runs(table), "metrics.json") + [table_file(table)]
    if table == "table1":
        for dataset in TABLE1_DATASETS:
            files += figure_files(f"recon_grid_{dataset}")
    elif table.startswith("ablation_"):
        files += figure_files(table)
    return files


def all_files():
    files = [f"{REPORTS}/report.tex", f"{REPORTS}/tables.tex"]
    for table in TABLES:
        files += target_files(table)
    for name in FIGURES:
        files += figure_files(name)
    return list(dict.fromkeys(files))
