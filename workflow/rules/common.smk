# Configuration, the run plan, and the helpers every rule file uses. No rules live here.
#
# The plan comes from qgvae.plan.build_plan(config): it decides which runs exist, which
# folder each lives in (results/<dataset>/<method>/<variant>/seed<k>/) and which runs fill which
# table cell. This file only turns it into file names; it never decides runs itself.
import hashlib
import json
import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from qgvae.errors import ConfigError
from qgvae.plan import build_plan, runs_for, subplan

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


def shell_words(args):
    """Command-line words, each quoted for the shell (every value that reaches a shell is)."""
    return " ".join(shlex.quote(str(arg)) for arg in args)


def reconstruct_args(wildcards):
    """`qgvae reconstruct` flags from the run's eval settings."""
    ev = run_config(wildcards)["eval"]
    args = ["--batch-size", ev["batch_size"]]
    if ev["test_n"] is not None:
        args += ["--test-n", ev["test_n"]]
    return shell_words(args)


def evaluate_args(wildcards):
    """`qgvae evaluate` flags from the run's eval settings."""
    ev = run_config(wildcards)["eval"]
    args = ["--batch-size", ev["batch_size"], "--protocols", *ev["protocols"]]
    # the test originals' Inception features, shared by every method on a dataset
    args += ["--features-cache", f"{RESULTS}/.inception-features"]
    if ev["fid_n"] is not None:
        args += ["--fid-n", ev["fid_n"]]
    return shell_words(args)


def job_resources(kind):
    """Scheduler resources of one rule kind, from the config's `resources` section."""
    res = RESOURCES[kind]
    return {"gpu": res["gpu"], "mem_mb": res["mem_mb"], "runtime": res["runtime"]}


def run_files(runs, *names):
    """Files ``names`` inside every run folder of ``runs``."""
    return [f"{run}/{name}" for run in runs for name in names]


# Everything a table or a figure reads from a run folder.
RUN_OUTPUTS = ("metrics.json", "reconstructions.npz", "analysis.npz")


# ---- plans of single tables ------------------------------------------------------------------
def table_runs(table):
    """Run folders of exactly one table (runs_for matches table-name prefixes)."""
    return runs_for({"tables": {table: TABLES[table]}})


def config_json():
    """The workflow config as canonical JSON, for `qgvae plan --config-json`."""
    return json.dumps(config, sort_keys=True)


def plan_digest(table=None):
    """Digest of the plan written by the plan rules. With the params rerun trigger a plan file is
    rewritten exactly when its content changes (through the config or the code)."""
    plan = PLAN if table is None else subplan(PLAN, table)
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def plan_file(table=None):
    return f"{RESULTS}/plan.json" if table is None else f"{RESULTS}/plans/{table}.json"


# ---- tables, figures, targets ----------------------------------------------------------------
def table_file(table):
    return f"{REPORTS}/targets/{table}/tables.tex"


def figure_outputs(name, caption, subcategory):
    """A figure's PDF and PNG (report items with their caption) and its JSON caption file."""

    def item(ext):
        return report(
            f"{REPORTS}/figures/{name}.{ext}",
            caption=f"../report/{caption}",
            category="Figures",
            subcategory=subcategory,
            labels={"figure": name, "format": ext.upper()},
        )

    return {"pdf": item("pdf"), "png": item("png"), "meta": f"{REPORTS}/figures/{name}.json"}


def figure_files(name):
    return [f"{REPORTS}/figures/{name}.{ext}" for ext in ("pdf", "png", "json")]


def table_metrics(wildcards):
    return run_files(table_runs(wildcards.table), "metrics.json")


def recon_grid_inputs(wildcards):
    runs = [path for path in table_runs("table1") if RUNS[path]["dataset"] == wildcards.dataset]
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
