"""The Snakemake workflow: which jobs each target schedules, config validation, lint, profile,
and (slow) the quick configuration end to end.

The dry runs call the `snakemake` beside this Python (the project's environment) in the
repository; they need the package importable, but no data, weights or results (``--forceall``
makes the job counts independent of what already exists).
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from qgvae.plan import build_plan, runs_for

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SNAKEMAKE = str(BIN / "snakemake")
PAPER = REPO / "config" / "config.yaml"
QUICK = REPO / "config" / "quick.yaml"
PROFILE = REPO / "workflow" / "profiles" / "default"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # the `qgvae` command
    return env


def snakemake(*args: str, cwd: Path = REPO, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@functools.cache  # one Snakemake start-up per (target, config) in a session, for every module
def dry_run(target: str, configfile: Path | None = None) -> str:
    """Output of a forced dry run of ``target`` (every job of the target, done or not)."""
    args = ["--dry-run", "--forceall", "--printshellcmds", "--cores", "1", target]
    if configfile is not None:
        args += ["--configfile", str(configfile)]
    res = snakemake(*args)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    return out


def job_counts(output: str) -> Counter:
    """The 'Job stats' table of a dry run as {rule: count} (without the 'total' row)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    counts: Counter = Counter()
    for line in lines[start + 3 :]:  # skip "job count" and the dashes
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    assert counts, f"no job stats in:\n{output[-2000:]}"
    return counts


def trained_runs(output: str) -> set[str]:
    """Run folders whose training the dry run schedules."""
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", output)
    return {
        m.group(1)
        for block in blocks
        if re.match(r"(?:local)?rule train:", block)
        for m in re.finditer(r"output: (\S+)/model\.pt", block)
    }


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def paper_plan():
    return build_plan(load(PAPER))


@pytest.fixture(scope="module")
def paper_all():
    return dry_run("all")


@pytest.fixture(scope="module")
def quick_all():
    return dry_run("all", QUICK)


# ---------------------------------------------------------------------------------------------
# Job counts of the paper's DAG


def test_paper_dag_trains_every_run_once(paper_plan, paper_all):
    cfg = load(PAPER)
    seeds = len(cfg["seeds"])
    # Hand count of distinct training configurations in config/config.yaml:
    #   Table 1: 4 datasets x 5 methods                                   = 20
    #   Table 2: 2 datasets x 2 budgets x (qgvae, dqvae), none in Table 1  =  8
    #   ablations on CIFAR-10, new configurations only (the QG-VAE / VQ-VAE defaults are
    #   Table 1's CIFAR-10 runs): codebooks 3-1, heads 4-1, reset_interval 4-1, ordering 4-1,
    #   tokens (5-1 QG-VAE + 3-1 VQ-VAE), global_local 3-1,
    #   vqvae_init 2-1 (released = Table 1's VQ-VAE)  = 2+3+3+3+6+2+1      = 20
    #   modern: 4 datasets x 6 new methods (QG-VAE's are Table 1's)        = 24
    #   modern_rates on CIFAR-10, new configurations only: 144 bits: the 1-D tokenizer and the
    #   5 grid methods on 4x4 cells (QG-VAE's 16 tokens: ablation_tokens); 288 and 1152: the
    #   1-D tokenizer (QG-VAE's: ablation_tokens); 576: the modern cells; 2304: the 1-D
    #   tokenizer and the 5 grid methods on 16x16 cells  = 6 + 1 + 1 + 6  = 14
    #   (20 + 8 + 20 + 24 + 14) configurations x 3 seeds                   = 258
    hand = (4 * 5 + 2 * 2 * 2 + (2 + 3 + 3 + 3 + 6 + 2 + 1) + 4 * 6 + 14) * seeds
    assert seeds == 3 and hand == 258
    assert len(paper_plan["runs"]) == hand

    counts = job_counts(paper_all)
    # + the generation study's 2 tokenizer runs (Table 1's CIFAR-10 VQ-VAE and QG-VAE, seed 0,
    # with train.keep_checkpoints; tests/test_workflow_generation.py)
    gen_runs = set(paper_plan["generation"]["runs"])
    assert len(gen_runs) == 2 and not gen_runs & set(paper_plan["runs"])
    assert counts["train"] == hand + 2
    assert counts["reconstruct"] == hand
    assert counts["evaluate"] == hand
    assert trained_runs(paper_all) == set(paper_plan["runs"]) | gen_runs
    assert counts["prepare_data"] == 4  # mnist, cifar10, svhn, celeba64
    assert counts["fetch_weights"] == 1
    assert counts["plan"] == 1
    tables = len(paper_plan["tables"])  # table1, table2, 7 ablations, modern, modern_rates
    assert tables == 11
    assert counts["table_plan"] == tables and counts["table"] == tables
    assert counts["table_collect"] == tables and counts["collect"] == 1  # the summary tables
    # paired intervals: the whole plan's, and each target's own (Table 1, the modern tables)
    assert counts["differences"] == 1 and counts["table_differences"] == 3
    assert counts["tables"] == 1 and counts["report_document"] == 1
    assert counts["recon_grid"] == 4 and counts["ablation_figure"] == 7
    assert counts["summary_figure"] == 5


def test_paper_plan_cells_per_table(paper_plan):
    # Cells per table as configured; runs per table = distinct cells x seeds.
    cells = {name: len(c) for name, c in paper_plan["tables"].items()}
    assert cells == {
        "table1": 20,
        "table2": 8,
        "ablation_codebooks": 3,
        "ablation_heads": 4,
        "ablation_reset_interval": 4,
        "ablation_ordering": 4,
        "ablation_tokens": 8,
        "ablation_global_local": 3,
        "ablation_vqvae_init": 2,
        "modern": 28,  # 4 datasets x 7 methods
        "modern_rates": 25,  # 7 methods at 576 bits, 7 at 144, 7 at 2304, 2 at 288 and 1152
    }
    # A default-valued ablation cell is Table 1's run (same folder), not a second training.
    t1 = set(runs_for(paper_plan, "table1"))
    heads = runs_for(paper_plan, "ablation_heads")
    assert len(heads) == 12 and len(set(heads) & t1) == 3


@pytest.mark.parametrize(
    "target, n_runs",
    [
        # one ablation: test_grouped_evaluation_keeps_one_ablation_to_its_own_runs (quick) and
        # test_ablations_target_is_the_union_of_the_axes (paper)
        ("table2", 24),  # 8 cells x 3 seeds
    ],
)
def test_target_schedules_exactly_its_runs(paper_plan, target, n_runs):
    out = dry_run(target)
    counts = job_counts(out)
    runs = set(runs_for({"tables": {target: paper_plan["tables"][target]}}))
    assert len(runs) == n_runs
    assert counts["train"] == counts["reconstruct"] == counts["evaluate"] == n_runs
    assert trained_runs(out) == runs
    assert counts["table"] == 1 and counts["table_plan"] == 1 and counts["table_collect"] == 1
    # nothing of other targets: no combined tables, report, summary or other figures
    for rule in ("tables", "collect", "report_document", "summary_figure", "recon_grid"):
        assert counts[rule] == 0, rule
    assert counts["plan"] == 1  # the table's plan is cut out of the whole plan
    assert counts["ablation_figure"] == (1 if target.startswith("ablation_") else 0)
    datasets = {paper_plan["runs"][r]["dataset"] for r in runs}
    assert counts["prepare_data"] == len(datasets)


def _evaluated(out: str) -> set[str]:
    """Run folders whose metrics.json the dry run's evaluate jobs (one per run or grouped)
    write."""
    found = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        if re.match(r"rule evaluate(_together_\d+)?:", block):
            outputs = re.search(r"output: (.*)", block).group(1)
            found |= set(re.findall(r"(results/\S+?)/metrics\.json", outputs))
    return found


@pytest.mark.parametrize("configfile", [PAPER, QUICK], ids=["paper", "quick"])
def test_modern_target_schedules_its_runs_and_their_evaluation(configfile):
    plan = build_plan(load(configfile))
    runs = set(runs_for(plan, "modern"))  # both modern tables (a prefix)
    others = {
        r for name in plan["tables"] if not name.startswith("modern") for r in plan_runs(plan, name)
    }
    qgvae = {r for r in runs if plan["runs"][r]["method"] == "qgvae"}
    assert runs == (runs - others) | qgvae  # the new methods' runs and QG-VAE's, nothing else
    assert len(runs - others) == (114 if configfile == PAPER else 6)  # 38 x 3 seeds; 6
    out = dry_run("modern", configfile)
    counts = job_counts(out)
    assert trained_runs(out) == runs and counts["reconstruct"] == len(runs)
    assert _evaluated(out) == runs
    datasets = {plan["runs"][r]["dataset"] for r in runs}
    assert counts["evaluate_floor"] == len(datasets)
    # its two tables (each with its own paired intervals) and figures, nothing of other targets
    for rule in ("table", "table_plan", "table_collect", "table_differences"):
        assert counts[rule] == 2, rule
    assert counts["recon_grid_modern"] == len(plan_datasets(plan, "modern"))
    assert counts["rate_distortion_modern"] == 1
    for rule in ("tables", "collect", "differences", "report_document", "summary_figure"):
        assert counts[rule] == 0, rule


def plan_datasets(plan, table):
    return {c["dataset"] for c in plan["tables"][table]}


def plan_runs(plan, table):
    return runs_for({"tables": {table: plan["tables"][table]}})


def test_ablations_target_is_the_union_of_the_axes(paper_plan):
    counts = job_counts(dry_run("ablations"))
    runs = runs_for(paper_plan, "ablation_")
    # 20 new configurations + the 2 defaults (QG-VAE, VQ-VAE on CIFAR-10), x 3 seeds
    assert counts["train"] == len(runs) == 66
    assert counts["ablation_figure"] == 7 and counts["table"] == 7


# ---------------------------------------------------------------------------------------------
# The quick configuration: the same DAG at toy scale


def test_quick_config_has_the_papers_dag_shape(paper_all, quick_all):
    quick, paper = job_counts(quick_all), job_counts(paper_all)
    # every rule of the paper's DAG; the quick config evaluates its runs in grouped jobs
    # (evaluation.together) instead of one job per run, the floor on its own in both
    grouped = {r for r in quick if re.fullmatch(r"evaluate_together_\d+", r)}
    assert grouped and set(quick) - grouped == set(paper) - {"evaluate"}
    cfg = load(QUICK)
    plan = build_plan(cfg)
    assert cfg["seeds"] == [0] and set(cfg["datasets"]) == {"photos"}
    assert set(cfg["table1"]["methods"]) | {"dqvae"} | set(cfg["modern"]["methods"]) == set(
        load(PAPER)["methods"]
    )
    assert set(cfg["modern"]["methods"]) == set(load(PAPER)["modern"]["methods"])
    # every axis but vqvae_init: the released VQ-VAE initialisation collapses at this scale
    assert set(cfg["ablations"]["axes"]) == set(load(PAPER)["ablations"]["axes"]) - {"vqvae_init"}
    assert all(len(a["values"]) == 2 for a in cfg["ablations"]["axes"].values())
    assert all(r["config"]["train"]["max_steps"] <= 1200 for r in plan["runs"].values())
    # Table 1 (5) + Table 2's DQ-VAE (1; its QG-VAE is the default) + one new run per ablation
    # axis (6) + the 64-token VQ-VAE of the tokens axis (1) + the 6 new methods of `modern`
    # (QG-VAE's is the default) = 19 runs, each trained once.
    assert quick["train"] == len(plan["runs"]) == 5 + 1 + 6 + 1 + 6
    assert quick["prepare_data"] == 1


def test_eval_settings_reach_reconstruct_and_evaluate_not_training(quick_all):
    # eval settings changed -> only reconstruct/evaluate re-run (params trigger), no retraining
    out = quick_all
    train = re.findall(r"qgvae train --config-json '(\{.*?\})' --out", out)
    assert train and all('"eval"' not in cmd for cmd in train)
    assert re.search(r"qgvae reconstruct \S+ --batch-size 100 --test-n 32 ", out)
    assert re.search(
        r"qgvae evaluate (\S+ )+--batch-size 100 --protocols vqwae native "
        r"--floor results/quick/photos/floor/test32 "
        r"--features-cache results/quick/\.inception-features --skip-current --backend auto "
        r"--fid-n 16 ",
        out,
    )


# ---------------------------------------------------------------------------------------------
# Bad configurations fail before any job, naming the key


def _mutate(cfg, path, value):
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()

BAD = {
    "unknown top-level key": (("bogus_key",), 1, "bogus_key"),
    "unknown train key": (("defaults", "train", "learning_rate"), 1.0e-3, "learning_rate"),
    "unknown resources key": (("resources", "train", "gpus"), 2, "gpus"),
    "runs per GPU below 1": (("runs_per_gpu",), 0, "runs_per_gpu"),
    "wrong type (seeds)": (("seeds",), "zero", "seeds"),
    "wrong type (epochs)": (("defaults", "train", "epochs"), "many", "epochs"),
    "unknown method in table1": (("table1", "methods"), ["vqvae", "vqgan"], "vqgan"),
    "unknown method under methods": (("methods", "vqgan"), {}, "vqgan"),
    "unknown dataset in table1": (("table1", "datasets"), ["mnist", "imagenet"], "imagenet"),
    "dataset without an entry": (("datasets", "svhn"), _DELETE, "svhn"),
    "unknown model key": (("methods", "qgvae", "model", "num_heads"), 8, "num_heads"),
    "wrong model type": (("methods", "qgvae", "model", "tokens"), "many", "tokens"),
    "unquoted (integer) label": (
        ("ablations", "axes", "heads", "values"),
        {8: {"qgvae": {}}},
        "heads.values",
    ),
    "unknown ablation model key": (
        ("ablations", "axes", "heads", "values", "32", "qgvae", "model", "n_heads"),
        32,
        "n_heads",
    ),
}


def _config_error(cfg: dict) -> str:
    """What the Snakefile's configuration step (common.smk: the schema, then the plan) says
    about ``cfg``, in process: the message naming the key, or '' when the config passes."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from qgvae.errors import ConfigError

    try:
        validate(cfg, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    except WorkflowError as exc:
        err = exc.__context__
        return ".".join(str(p) for p in getattr(err, "absolute_path", [])) + f": {err}"
    try:
        build_plan(cfg)
    except ConfigError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_fails_naming_the_key(case):
    """Every bad config is refused by the checks the Snakefile runs while it is parsed."""
    path, value, key = BAD[case]
    cfg = copy.deepcopy(load(PAPER))
    _mutate(cfg, path, value)
    message = _config_error(cfg)
    assert message and key in message, message


# through Snakemake itself: a schema error (plan errors are raised at the same point of parsing
# the Snakefile, common.smk; every case is checked in process above)
@pytest.mark.parametrize("case", ["unknown top-level key"])
def test_bad_config_fails_before_any_job(tmp_path, case):
    path, value, key = BAD[case]
    cfg = copy.deepcopy(load(PAPER))
    _mutate(cfg, path, value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = snakemake("--dry-run", "--cores", "1", "all", "--configfile", str(bad))
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-2000:]
    assert key in out, out[-3000:]
    assert "Job stats" not in out and "rule train" not in out
    # (the unmodified config passes: test_paper_dag_trains_every_run_once)


# ---------------------------------------------------------------------------------------------
# Lint and profile


def test_lint_is_clean():
    res = snakemake("--lint")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "Lints for" not in out, out[-4000:]


def test_workflow_profile_defaults_and_it_is_found_without_naming_it(paper_all):
    """The local defaults; Snakemake 9 looks for profiles/default beside the Snakefile: the
    top-level `profiles` link to workflow/profiles makes `snakemake --cores 8 all` use them."""
    prof = load(PROFILE / "config.yaml")
    assert "code" not in prof["rerun-triggers"]  # code edits must not retrain
    assert set(prof["rerun-triggers"]) == {"mtime", "params", "input"}
    assert "gpu=1" in prof["resources"]
    assert prof["rerun-incomplete"] is True and prof["keep-going"] is False
    assert "Using workflow specific profile" in paper_all  # a dry run that names no profile


def test_grouped_evaluation_keeps_one_ablation_to_its_own_runs():
    # evaluation.together groups runs by the tables they fill: re-running one ablation trains,
    # reconstructs and evaluates that ablation's runs, not every run sharing its eval settings
    plan = build_plan(load(QUICK))
    own = runs_for(plan, "ablation_heads")
    out = dry_run("ablation_heads", QUICK)
    counts = job_counts(out)
    assert counts["train"] == counts["reconstruct"] == len(own) == 2
    evaluated = set()
    for block in re.split(r"\n(?=rule \w+:)", out):
        if re.match(r"rule evaluate_together_\d+:", block):
            outputs = re.search(r"output: (.*)", block).group(1)
            evaluated |= set(re.findall(r"(results/\S+?)/metrics\.json", outputs))
    assert evaluated == set(own)
    assert counts["evaluate_floor"] == 1


def test_every_rule_logs_and_heavy_rules_benchmark(quick_all):
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    # rules at any indentation (some are defined under `if`); the grouped evaluation rule is
    # anonymous, named in a `name:` directive
    starts = list(re.finditer(r"^( *)rule ?(\w*):\n", text, re.M))
    rules = {}
    for i, m in enumerate(starts):
        body = text[m.end() : starts[i + 1].start() if i + 1 < len(starts) else len(text)]
        name = m.group(2) or re.search(r'name:\s*f?"(\w+?)_?\{', body).group(1)
        rules[name] = body
    assert len(rules) >= 12
    for name, body in rules.items():
        assert "log:" in body, name
    heavy = ("train", "reconstruct", "evaluate", "evaluate_together", "evaluate_floor", "floor")
    assert set(heavy) <= set(rules)
    for name in heavy:
        kind = {"evaluate_together": "evaluate", "evaluate_floor": "evaluate"}.get(name, name)
        kind = "reconstruct" if kind == "floor" else kind
        body = rules[name]
        assert "benchmark:" in body and f'job_resources("{kind}")' in body, name
    # every heavy job of the dry run asks for the config's GPUs, memory and time
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", quick_all)
    jobs = [b for b in blocks if re.match(r"rule (train|reconstruct|evaluate\w*):", b)]
    assert len(jobs) >= 2 * 13 + 2
    for block in jobs:
        res = re.search(r"resources: (.*)", block).group(1)
        assert all(f"{key}=" in res for key in ("gpu", "mem_mb", "runtime")), block


def test_every_device_command_is_told_how_many_runs_share_a_gpu(quick_all):
    """qgvae.gpu_slots: every command that resolves a device gets QGVAE_RUNS_PER_GPU (config
    runs_per_gpu, default 1) in front of it; the CPU-only commands do not."""
    commands = re.findall(r"^Shell command: (.*)$", quick_all, re.M)
    kind = r"qgvae (train|reconstruct|evaluate|prior (?:encode|train|sample|evaluate)) "
    device = [c for c in commands if re.search(kind, c)]
    kinds = {re.search(kind, c).group(1) for c in device}
    assert kinds == {
        "train",
        "reconstruct",
        "evaluate",
        "prior encode",
        "prior train",
        "prior sample",
        "prior evaluate",
    }, kinds
    assert all(c.startswith("QGVAE_RUNS_PER_GPU=1 qgvae ") for c in device), device
    assert not [c for c in commands if c not in device and "QGVAE_RUNS_PER_GPU" in c]


# ---------------------------------------------------------------------------------------------
# The quick configuration end to end (minutes; needs the LPIPS / FID weights)


def _weights_present() -> bool:
    from qgvae.evaluation.weights import expected_weight_path

    return all(expected_weight_path(k).is_file() for k in ("lpips", "fid"))


@pytest.mark.slow
@pytest.mark.weights
def test_quick_workflow_end_to_end(tmp_path):
    if not _weights_present():
        pytest.skip("LPIPS / FID weights not in the torch hub cache (qgvae fetch-weights)")
    shutil.copytree(REPO / "config", tmp_path / "config")
    res = snakemake(
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--workflow-profile",
        str(PROFILE),
        "--cores",
        "2",
        "all",
        "--configfile",
        str(tmp_path / "config" / "quick.yaml"),
        cwd=tmp_path,
        timeout=1800,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    tables = tmp_path / "reports" / "tables.tex"
    assert tables.is_file() and tables.stat().st_size > 0
    assert (tmp_path / "reports" / "report.tex").is_file()
    for axis in load(QUICK)["ablations"]["axes"]:
        assert (tmp_path / "reports" / "figures" / f"ablation_{axis}.png").is_file()
    # nothing left to do
    again = snakemake(
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--dry-run",
        "--cores",
        "2",
        "all",
        "--configfile",
        str(tmp_path / "config" / "quick.yaml"),
        cwd=tmp_path,
    )
    assert "Nothing to be done" in again.stdout + again.stderr
    # the HTML report of what was built
    html = snakemake(
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(tmp_path),
        "--report",
        str(tmp_path / "reports" / "report.html"),
        "--configfile",
        str(tmp_path / "config" / "quick.yaml"),
        cwd=tmp_path,
    )
    assert html.returncode == 0, (html.stdout + html.stderr)[-4000:]
    # tables.tex compiles
    if shutil.which("pdflatex"):
        doc = tmp_path / "doc.tex"
        doc.write_text(
            "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
            "\\begin{document}\n\\input{" + tables.as_posix() + "}\n\\end{document}\n"
        )
        tex = subprocess.run(
            ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert tex.returncode == 0, tex.stdout[-3000:]


# ---------------------------------------------------------------------------------------------
# config/mnist_cpu.yaml: the real-data CPU benchmark (docs/results/mnist-cpu.md)

MNIST_CPU = REPO / "config" / "mnist_cpu.yaml"
# what mnist_cpu.yaml may change in a method's train settings: the budget and its consequences
BUDGET_KEYS = {"max_steps", "lr_schedule", "plateau_factor", "plateau_patience"}
BUDGET_KEYS |= {"plateau_threshold", "val_every", "amp", "checkpoint_every", "log_every"}


def test_mnist_cpu_trains_config_yamls_models_and_optimisers():
    """Its Table-1 runs are config.yaml's MNIST runs but for the training length: the same
    model arguments and optimiser settings, run config by run config."""
    paper = build_plan(load(PAPER))
    cpu = build_plan(load(MNIST_CPU))

    def by_method(plan):
        return {
            c["method"]: plan["runs"][c["runs"][0]]["config"]
            for c in plan["tables"]["table1"]
            if c["dataset"] == "mnist"
        }

    want, got = by_method(paper), by_method(cpu)
    assert sorted(got) == sorted(want) == ["qgvae", "splitvq", "sqvae", "vqvae", "vqwae"]
    for method, cfg in got.items():
        model = dict(cfg["model"])
        if method in ("vqvae", "splitvq"):  # the released init collapses at this budget
            assert model.pop("init") == "uniform" and want[method]["model"]["init"] == "released"
            model["init"] = "released"
        assert model == want[method]["model"], method
        for key, value in want[method]["train"].items():
            if key not in BUDGET_KEYS and key not in ("epochs", "val_batches", "select"):
                assert cfg["train"][key] == value, (method, key)
        assert cfg["train"]["select"] == want[method]["train"]["select"], method
        assert cfg["eval"]["test_n"] >= 2000 and 0 < cfg["eval"]["fid_n"] <= cfg["eval"]["test_n"]
        assert set(cfg["eval"]["protocols"]) == {"vqwae", "native"}


def test_mnist_cpu_dry_run_ends_in_its_markdown_page():
    out = dry_run("all", MNIST_CPU)
    counts = job_counts(out)
    assert counts["train"] == 5 and counts["markdown"] == 1
    assert "docs/results/mnist-cpu.md" in out and "reports/mnist_cpu/tables.tex" in out
