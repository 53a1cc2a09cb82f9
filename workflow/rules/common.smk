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
BOOTSTRAP = config.get("bootstrap") or {"resamples": 2000, "rfid_resamples": 200, "seed": 0}
REPORTS = config.get("reports", "reports")
# Runs per GPU (qgvae.gpu_slots): the commands that run on a device read QGVAE_RUNS_PER_GPU,
# set in front of each from the job's resource `runs_per_gpu` (job_resources). A resource, not
# a param: changing it must not rerun anything (resources are no rerun trigger).
RUNS_PER_GPU = int(config.get("runs_per_gpu", 1))
MARKDOWN = config.get("markdown") or {}

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
MODERN_DATASETS = sorted({cell["dataset"] for cell in TABLES.get("modern", [])})
ABLATION_AXES = [t[len("ablation_") :] for t in TABLES if t.startswith("ablation_")]
MODERN_FIGURES = [f"recon_grid_modern_{d}" for d in MODERN_DATASETS]
MODERN_FIGURES += ["rate_distortion_modern"] if TABLES.get("modern_rates") else []
FIGURES = (
    [f"recon_grid_{d}" for d in TABLE1_DATASETS]
    + SUMMARY_FIGURES
    + [f"ablation_{axis}" for axis in ABLATION_AXES]
    + MODERN_FIGURES
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
    n=r"\d+|all",


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


def floor_dir(dataset, test_n):
    """The floor run of ``dataset`` for ``test_n`` test images (``qgvae floor``): the training
    mean image as the reconstruction of every test image, scored like a run."""
    return f"{RESULTS}/{dataset}/floor/test{test_n or 'all'}"


def run_floor(wildcards):
    """The floor run folder of the run named by the wildcards."""
    cfg = run_config(wildcards)
    return floor_dir(cfg["dataset"], cfg["eval"]["test_n"])


# With `evaluation: {together: true}` (the quick configuration) runs are evaluated in groups,
# one `qgvae evaluate` process per group, so that the metric networks load once per group instead
# of once per run. A group holds runs that share their eval settings *and* the set of tables they
# belong to: a target (one ablation, one table) then needs exactly its own runs' groups, never a
# group that would also train runs of other targets. Each run keeps its own metrics.json; a rerun
# skips the runs whose metrics.json already records the same inputs (--skip-current). The floors
# are evaluated on their own (evaluate_floor) in both modes, since every target needs them.
EVALUATION = config.get("evaluation") or {}
EVALUATE_TOGETHER = bool(EVALUATION.get("together", False))
# the Inception / LPIPS backend (qgvae evaluate --backend): the same numbers, different speed
BACKEND_ARGS = ["--backend", EVALUATION.get("backend", "auto")]


def run_memberships():
    """{run folder: sorted tuple of the tables it fills}."""
    member = {path: [] for path in RUNS}
    for table in TABLES:
        for path in table_runs(table):
            member[path].append(table)
    return {path: tuple(sorted(tables)) for path, tables in member.items()}


def eval_groups():
    """[(settings key, runs)] of the plan: the runs that share eval settings and tables, each
    group split round-robin into `evaluation.jobs` parts (so that parts run side by side)."""
    groups = {}
    member = run_memberships()
    for path, info in RUNS.items():
        ev = info["config"]["eval"]
        floor = floor_dir(info["dataset"], ev["test_n"])
        key = (info["dataset"], floor, ev["batch_size"], tuple(ev["protocols"]), ev["fid_n"])
        groups.setdefault((key, member[path]), []).append(path)
    parts = max(1, int(EVALUATION.get("jobs", 1)))
    out = []
    for (key, _), runs in groups.items():
        for i in range(min(parts, len(runs))):
            out.append((key, runs[i::parts]))
    return out


def group_eval_args(key):
    """`qgvae evaluate` flags of one group (its runs share these settings)."""
    _, floor, batch_size, protocols, fid_n = key
    args = ["--batch-size", batch_size, "--protocols", *protocols, "--floor", floor]
    args += ["--features-cache", f"{RESULTS}/.inception-features", "--skip-current"]
    args += BACKEND_ARGS
    if fid_n is not None:
        args += ["--fid-n", fid_n]
    return shell_words(args)


def floor_eval_args(wildcards):
    """`qgvae evaluate` flags of a floor: the eval settings of its dataset's runs."""
    test_n = None if wildcards.n == "all" else int(wildcards.n)
    evs = [
        info["config"]["eval"]
        for info in RUNS.values()
        if info["dataset"] == wildcards.dataset and info["config"]["eval"]["test_n"] == test_n
    ]
    ev = evs[0] if evs else {"batch_size": 100, "protocols": ["vqwae", "native"], "fid_n": None}
    args = ["--batch-size", ev["batch_size"], "--protocols", *ev["protocols"]]
    args += ["--features-cache", f"{RESULTS}/.inception-features"]
    args += ["--floor", floor_dir(wildcards.dataset, test_n)]  # scored against itself: gain 0
    args += BACKEND_ARGS
    if ev["fid_n"] is not None:
        args += ["--fid-n", ev["fid_n"]]
    return shell_words(args)


def floor_metrics(runs):
    """The floors' metrics.json of the given run folders (their datasets and test_n)."""
    out = []
    for run in runs:
        cfg = RUNS[run]["config"]
        out.append(f"{floor_dir(cfg['dataset'], cfg['eval']['test_n'])}/metrics.json")
    return list(dict.fromkeys(out))


def evaluate_args(wildcards):
    """`qgvae evaluate` flags from the run's eval settings."""
    ev = run_config(wildcards)["eval"]
    args = ["--batch-size", ev["batch_size"], "--protocols", *ev["protocols"]]
    args += ["--floor", run_floor(wildcards)]
    # the test originals' Inception features, shared by every method on a dataset
    args += ["--features-cache", f"{RESULTS}/.inception-features", *BACKEND_ARGS]
    if ev["fid_n"] is not None:
        args += ["--fid-n", ev["fid_n"]]
    return shell_words(args)


def job_resources(kind):
    """Scheduler resources of one rule kind, from the config's `resources` section, and the
    config's runs_per_gpu (for QGVAE_RUNS_PER_GPU; no limit unless --resources names it)."""
    res = RESOURCES[kind]
    return {
        "gpu": res["gpu"],
        "mem_mb": res["mem_mb"],
        "runtime": res["runtime"],
        "runs_per_gpu": RUNS_PER_GPU,
    }


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
    """The workflow config as canonical JSON, for `qgvae plan --config-json`; without
    runs_per_gpu, which says how this machine runs jobs, not what they compute (changing it must
    not rewrite the plan and with it every table and figure)."""
    return json.dumps({k: v for k, v in config.items() if k != "runs_per_gpu"}, sort_keys=True)


def plan_digest(table=None):
    """Digest of the plan written by the plan rules. With the params rerun trigger a plan file is
    rewritten exactly when its content changes (through the config or the code)."""
    plan = PLAN if table is None else subplan(PLAN, table)
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def plan_file(table=None):
    return f"{RESULTS}/plan.json" if table is None else f"{RESULTS}/plans/{table}.json"


def summary_file(table=None):
    """The summary table (`qgvae collect`) of the whole plan, or of one table's runs."""
    return f"{RESULTS}/summary.csv" if table is None else f"{RESULTS}/summaries/{table}.csv"


def summary_flag(wildcards, input):
    """`--summary CSV` of a figure rule's input, shell-quoted (FIGURE_CMD)."""
    return shell_words(["--summary", input.summary])


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


# the paired bootstrap intervals (written by the differences rule) mark Table 1 and the modern
# tables and give the rate-distortion figure its error bars; a target's own table reads those
# of its own runs (written by the table_differences rule; the same intervals: seeds per cell)
DIFFERENCES = f"{REPORTS}/tables/paired_differences.csv"
INTERVALS = f"{REPORTS}/tables/method_intervals.csv"
INTERVAL_TABLES = ("table1", "table2", "ablation_tokens", "modern", "modern_rates")
PAIRED_TABLES = ("table1", "modern")


def table_differences_file(table):
    return f"{REPORTS}/targets/{table}/paired_differences.csv"


def differences_inputs():
    """What `qgvae differences` reads: the interval tables' runs (metrics, per-image values,
    features) and their floors."""
    runs = [r for t in INTERVAL_TABLES if t in TABLES for r in table_runs(t)]
    return run_files(runs, "metrics.json") + floor_metrics(runs)


def table_metrics(wildcards):
    runs = table_runs(wildcards.table)
    return run_files(runs, "metrics.json") + floor_metrics(runs)


def recon_grid_inputs(wildcards, table="table1"):
    runs = [path for path in table_runs(table) if RUNS[path]["dataset"] == wildcards.dataset]
    return run_files(runs, *RUN_OUTPUTS) + floor_metrics(runs)


def table_outputs(wildcards, table):
    runs = table_runs(table)
    return run_files(runs, *RUN_OUTPUTS) + floor_metrics(runs)


def ablation_figure_inputs(wildcards):
    runs = table_runs(f"ablation_{wildcards.axis}")
    return run_files(runs, *RUN_OUTPUTS) + floor_metrics(runs)


def target_files(table):
    """Files built by the target of one table (its runs' metrics, its table, its figures)."""
    if table not in TABLES:
        return []
    files = run_files(table_runs(table), "metrics.json") + [table_file(table)]
    if table == "table1":
        for dataset in TABLE1_DATASETS:
            files += figure_files(f"recon_grid_{dataset}")
    elif table == "modern":
        for dataset in MODERN_DATASETS:
            files += figure_files(f"recon_grid_modern_{dataset}")
    elif table == "modern_rates":
        files += figure_files("rate_distortion_modern")
    elif table.startswith("ablation_"):
        files += figure_files(table)
    return files


def all_files():
    files = [summary_file(), f"{REPORTS}/report.tex", f"{REPORTS}/tables.tex"]
    if MARKDOWN:
        files.append(MARKDOWN["out"])
    for table in TABLES:
        files += target_files(table)
    for name in FIGURES:
        files += figure_files(name)
    return list(dict.fromkeys(files))


# ==== the generation study (qgvae.prior; rules in workflow/rules/generation.smk) ==============
# plan["generation"] (qgvae.prior.plan) names the tokenizer runs and one prior folder per
# tokenizer and seed: <run>/prior/<digest>/. Runs that only the study needs (a table cell's
# configuration plus train.keep_checkpoints) join RUNS, so rule train trains them.
GENERATION = PLAN.get("generation") or {}
GEN_PRIORS = GENERATION.get("priors", {})
GEN_EPOCHS = GENERATION.get("epochs", [])
RUNS.update(GENERATION.get("runs", {}))
PRIOR = f"{RUN}/prior/{{prior}}"
PRIOR_KEY = f"{RUN_KEY}/prior/{{prior}}"  # for log and benchmark paths
GENERATION_FIGURES = ["generation_fid", "generation_samples"] if GENERATION else []
FIGURES += GENERATION_FIGURES  # drawn by rule generation_figure, listed by all and the report


def prior_entry(wildcards):
    path = PRIOR.format(**wildcards)
    if path not in GEN_PRIORS:
        raise WorkflowError(
            f"{path} is not a prior folder of the current plan (config changed?); "
            f"prior folders are listed in {RESULTS}/plan.json under generation.priors"
        )
    return GEN_PRIORS[path]


def prior_encode_inputs(wildcards):
    """model.pt of the tokenizers compared with this one (match_psnr: auto reads their logs)."""
    return [f"{run}/model.pt" for run in prior_entry(wildcards)["compare"]]


def prior_encode_args(wildcards):
    entry = prior_entry(wildcards)
    match = entry["match"]["match_psnr"]
    args = ["--match-psnr", "final" if match is None else match]
    if entry["compare"]:
        args += ["--compare", *entry["compare"]]
    args += ["--batch-size", GENERATION["settings"]["encode_batch_size"]]
    return shell_words(args)


def prior_train_json(wildcards):
    """`qgvae prior train --config-json`: canonical, for the params rerun trigger."""
    return json.dumps(prior_entry(wildcards)["train_settings"], sort_keys=True)


def prior_sample_args(wildcards):
    s = GENERATION["settings"]["sample"]
    args = ["--batch-size", s["batch_size"], "--temperature", s["temperature"], "--seed", s["seed"]]
    if s["n"] is not None:
        args += ["--n", s["n"]]
    if s["top_k"] is not None:
        args += ["--top-k", s["top_k"]]
    return shell_words(args)


def prior_evaluate_args(wildcards):
    return shell_words(["--features-cache", f"{RESULTS}/.inception-features"])


def generation_outputs(name):
    """Every prior folder's ``name`` (formatted with ``epoch``) at every sampled epoch."""
    return [f"{prior}/{name.format(epoch=epoch)}" for prior in GEN_PRIORS for epoch in GEN_EPOCHS]


def generation_metrics():
    return generation_outputs("metrics_epoch{epoch:04d}.json")


def generation_figure_inputs(wildcards):
    files = generation_metrics()
    if wildcards.gfigure == "generation_samples":
        files += generation_outputs("samples_epoch{epoch:04d}.npz")
    return files


def generation_files():
    """Files the `generation` target builds: its figures and its table (none without a study)."""
    if not GENERATION:
        return []
    files = [f for name in GENERATION_FIGURES for f in figure_files(name)]
    return files + [table_file("generation")]
