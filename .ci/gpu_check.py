"""The prepared device check (``.ci/gpu.sh``): every GPU path of the harness, once, in minutes.

One PASS / FAIL / SKIP line per check as it ends, a summary of them, then the figures (also in
``$OUT/gpu_check.json`` when ``--out`` is given). ``--device cpu`` runs the same checks at toy
sizes on the CPU (CI runs it, so the script itself is tested); ``--device cuda`` is the real
thing, sized for one H100 in under 8 minutes. It reads only what travels with the tree:
``.devdata/MNIST/raw`` (real MNIST) and ``.devdata/torch_home`` (LPIPS's AlexNet), plus the
wheels ``gpu.sh`` installed. pytorch-fid's Inception (87 MB) does not travel: the evaluation
check compares GPU and CPU features, and times them, with a stand-in of the same architecture
and random weights, written to a scratch torch hub folder (never beside real weights).

Checks (``--only NAME ...`` runs some):
  tests      the CUDA-only tests (``pytest -m cuda``)
  bench      ``qgvae bench train``: every Table-1 method eager fp32 and bf16; QG-VAE and VQ-VAE
             compiled too; ms/step, images/s, host syncs per step, ratios to eager fp32
  packing    aggregate images/s of 1, 2, 4, 8 QG-VAE trainings sharing one GPU (GPU slots)
  train      a short training of every Table-1 method on the data, against the mean image
  resume     SIGTERM during a training: exit 143; the rerun resumes and finishes
  eval       the same images on the device and the CPU: SSIM / PSNR within 1e-6, LPIPS within
             1e-5, Inception features (stand-in weights) within 1e-4; seconds per stage
  prior      ``qgvae prior bench``
  precision  QG-VAE on the data at the paper's MNIST settings, fp32 against bf16 autocast, two
             seeds each (1,500 steps on a GPU): validation PSNR curves, and whether bf16 ends
             within the fp32 seeds' spread (docs/fidelity.md, "Precision"). Not part of the
             default run (6,000 QG-VAE steps): `--only precision`, a call of its own. On a CPU
             without native bf16 both arms are fp32 and it only exercises this script.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHECKS = ("tests", "bench", "packing", "train", "resume", "eval", "prior", "precision")
RESULTS: list[dict[str, Any]] = []


def report(check: str, ok: bool | None, detail: str, **figures: Any) -> None:
    status = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
    RESULTS.append({"check": check, "status": status, "detail": detail, **figures})
    print(f"{status} {check}: {detail}", flush=True)


def qgvae(*args: str, env: dict, timeout: float = 600, check: bool = True):
    proc = subprocess.run(
        [sys.executable, "-m", "qgvae.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-6:])
        raise RuntimeError(f"`qgvae {' '.join(args[:2])}` exited {proc.returncode}: {tail}")
    return proc


class Setup:
    """Sizes and places for one device: the paper's MNIST settings on a GPU, the quick config's
    toy settings on the CPU."""

    def __init__(self, device: str, out: Path) -> None:
        self.device, self.out = device, out
        self.gpu = device.startswith("cuda")
        self.carried = REPO / ".devdata"
        self.torch_home = out / "torch_home"
        self.workflow = REPO / ("config/mnist_cpu.yaml" if self.gpu else "config/quick.yaml")
        self.dataset = "mnist" if self.gpu else "photos"
        self.root = out / "data"
        self.env = {
            **os.environ,
            "TORCH_HOME": str(self.torch_home),
            "QGVAE_PROGRESS_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        }
        self.steps = 50 if self.gpu else 2  # timed bench steps

    def workflow_config(self) -> dict[str, Any]:
        import yaml

        cfg = yaml.safe_load(self.workflow.read_text())
        cfg.update(data_root=str(self.root), results=str(self.out / "results"))
        return cfg

    def methods(self) -> list[str]:
        return list(self.workflow_config()["table1"]["methods"])

    def run_config(self, method: str, seed: int = 0, **train: Any) -> dict[str, Any]:
        from qgvae.runs import resolve_run

        cfg = resolve_run(self.workflow_config(), self.dataset, method, None, seed, "gpu_check")
        cfg["train"].update(device=self.device, **train)
        return cfg


def prepare(s: Setup) -> None:
    """The dataset cache and the scratch torch hub (the carried LPIPS AlexNet, the stand-in)."""
    import shutil
    from unittest import mock

    import pytorch_fid.inception as pfi
    import torch

    if s.gpu:
        raw = s.carried / "MNIST" / "raw"
        if not raw.is_dir():
            raise RuntimeError(f"{raw} is missing: run `bash .ci/gpu.sh --prepare` first")
        (s.root / "MNIST").mkdir(parents=True, exist_ok=True)
        if not (s.root / "MNIST" / "raw").exists():
            (s.root / "MNIST" / "raw").symlink_to(raw)
    qgvae("prepare-data", s.dataset, "--root", str(s.root), env=s.env)
    hub = s.torch_home / "hub" / "checkpoints"
    hub.mkdir(parents=True, exist_ok=True)
    sources = [s.carried / "torch_home", Path(os.environ.get("TORCH_HOME", "/nonexistent"))]
    for src in sources:
        alex = src / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
        if alex.is_file() and not (hub / alex.name).exists():
            shutil.copy(alex, hub / alex.name)
    torch.manual_seed(0)
    with (
        mock.patch.object(pfi, "load_state_dict_from_url", lambda *a, **k: {}),
        mock.patch.object(torch.nn.Module, "load_state_dict", lambda self, *a, **k: None),
    ):
        standin = pfi.fid_inception_v3()  # pytorch-fid's architecture, random weights
    torch.save(standin.state_dict(), hub / pfi.FID_WEIGHTS_URL.rsplit("/", 1)[-1])


# -- the checks ---------------------------------------------------------------------------------
def check_tests(s: Setup) -> None:
    if not s.gpu:
        report("tests", None, "the CUDA-only tests need a GPU")
        return
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", "tests"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=s.env,
        timeout=300,
    )
    last = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    report("tests", proc.returncode == 0, f"pytest -m cuda: {last}")
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")


def _bench(s: Setup, name: str, *args: str) -> list[dict[str, Any]]:
    path = s.out / f"bench_{name}.json"
    qgvae(
        "bench", "train", "--workflow-config", str(s.workflow), "--datasets", s.dataset,
        "--devices", s.device, "--steps-gpu", str(s.steps), "--steps-cpu", str(s.steps),
        "--json", str(path), *args, env=s.env, timeout=900,
    )  # fmt: skip
    return json.loads(path.read_text())["rows"]


def check_bench(s: Setup) -> None:
    from qgvae.training.precision import cpu_bf16_native

    # bf16 where the device computes it natively; compiling QG-VAE takes minutes on a CPU
    precisions = ["fp32", "bf16"] if s.gpu or cpu_bf16_native() else ["fp32"]
    compiled = ["qgvae", "vqvae"] if s.gpu else ["vqvae"]
    rows = _bench(s, "eager", "--modes", "eager", "--precisions", *precisions)
    rows += _bench(
        s, "compiled", "--methods", *compiled, "--modes", "eager", "compiled",
        "--precisions", *precisions,
    )  # fmt: skip
    for r in rows:
        print(
            f"  bench {r['method']:<8} {r['mode']:<8} {r['precision']:<4} {r['step_ms']:9.2f} "
            f"ms/step {r['images_per_s']:9.0f} img/s ratio {r['ratio'] or float('nan'):5.2f}x "
            f"syncs/step {r['syncs_per_step']} compile_s {r['compile_s']}"
        )
    methods = set(s.methods())
    ok = {r["method"] for r in rows if r["mode"] == "eager"} >= methods
    syncs = [r["syncs_per_step"] for r in rows if r["syncs_per_step"] is not None]
    report(
        "bench",
        ok,
        f"{len(rows)} rows, {len(methods)} methods; host syncs per step "
        + (f"max {max(syncs):.1f}" if syncs else "n/a on the CPU"),
        rows=rows,
    )


def check_packing(s: Setup) -> None:
    cfg_path = s.out / "qgvae_run.json"
    cfg_path.write_text(json.dumps(s.run_config("qgvae")))
    counts = (1, 2, 4, 8) if s.gpu else (1, 2)
    figures = {}
    for k in counts:
        env = {**s.env, "QGVAE_RUNS_PER_GPU": str(k)}
        procs = []
        t0 = time.perf_counter()
        for i in range(k):
            args = [
                "bench", "train", "--config", str(cfg_path), "--devices",
                "cuda" if s.gpu else "cpu", "--modes", "eager",
                "--precisions", "bf16" if s.gpu else "fp32", "--steps-gpu", "100",
                "--steps-cpu", "2", "--json", str(s.out / f"pack{k}_{i}.json"),
            ]  # fmt: skip
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "qgvae.cli", *args],
                    env=env,
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        errs = [p.communicate(timeout=600)[1] for p in procs]
        wall = time.perf_counter() - t0
        if any(p.returncode for p in procs):
            raise RuntimeError(f"{k} packed runs: " + " | ".join(e[-300:] for e in errs))
        rows = [json.loads((s.out / f"pack{k}_{i}.json").read_text())["rows"][0] for i in range(k)]
        total = sum(r["images_per_s"] for r in rows)
        devices = sorted({r["device"] for r in rows})
        figures[k] = {"images_per_s": total, "wall_s": wall, "devices": devices}
        print(f"  packing {k} run(s): {total:9.0f} img/s together, on {devices}, {wall:.0f} s")
    base = figures[counts[0]]["images_per_s"]
    gain = ", ".join(f"{k}: {v['images_per_s'] / base:.2f}x" for k, v in figures.items())
    report("packing", True, f"aggregate images/s against one run: {gain}", packing=figures)


def check_train(s: Setup) -> None:
    steps = 600 if s.gpu else 60
    rows = {}
    for method in s.methods():
        cfg = s.run_config(method, max_steps=steps, val_every=steps // 3, checkpoint_every=10**6)
        run = s.out / "train" / method
        t0 = time.perf_counter()
        qgvae("train", "--config-json", json.dumps(cfg), "--out", str(run), env=s.env)
        meta = json.loads((run / "run.json").read_text())
        gain = meta["final_val_psnr"] - meta["val_floor_psnr"]
        rows[method] = {
            "seconds": time.perf_counter() - t0,
            "val_psnr": meta["final_val_psnr"],
            "floor": meta["val_floor_psnr"],
            "precision": meta["precision"],
        }
        print(
            f"  train {method:<8} {steps} steps {rows[method]['seconds']:6.1f} s  val PSNR "
            f"{meta['final_val_psnr']:.2f} dB, mean image {meta['val_floor_psnr']:.2f} dB "
            f"({gain:+.2f} dB)"
        )
    learned = [m for m, r in rows.items() if r["val_psnr"] >= r["floor"] + 3.0]
    ok = len(learned) == len(rows) if s.gpu else True  # toy steps on the CPU: it ran, no more
    bar = "" if s.gpu else " (toy steps on the CPU: the 3 dB bar applies on a GPU)"
    detail = f"{len(learned)}/{len(rows)} methods >= 3 dB over the mean image{bar}"
    report("train", ok, detail, train=rows)


def check_resume(s: Setup) -> None:
    cfg = s.run_config("qgvae", max_steps=400 if s.gpu else 40, checkpoint_every=20)
    run = s.out / "resume"
    args = [sys.executable, "-m", "qgvae.cli", "train", "--config-json", json.dumps(cfg)]
    args += ["--out", str(run)]
    proc = subprocess.Popen(args, env=s.env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        meta = run / "run.json"
        if meta.exists() and "checkpoint.pt" in (json.loads(meta.read_text()).get("files") or {}):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=300)[1]
    stopped = json.loads((run / "run.json").read_text())
    again = qgvae("train", "--config-json", json.dumps(cfg), "--out", str(run), env=s.env)
    meta = json.loads((run / "run.json").read_text())
    ok = (
        proc.returncode == 143
        and meta["status"] == "finished"
        and len(meta["resumed_from"]) == 1
        and again.returncode == 0
    )
    report(
        "resume",
        ok,
        f"SIGTERM -> exit {proc.returncode} ({err.strip().splitlines()[-1][:120] if err else ''}); "
        f"rerun resumed from step {meta['resumed_from']} and {meta['status']} "
        f"(status before: {stopped['status']})",
    )


def check_eval(s: Setup) -> None:
    import numpy as np
    import torch

    from qgvae.evaluation.fid import InceptionFeatures
    from qgvae.evaluation.image_metrics import LPIPSMetric, psnr_batch, ssim_batch
    from qgvae.evaluation.passes import resize
    from qgvae.evaluation.torch_metrics import psnr_torch, ssim_torch

    os.environ["TORCH_HOME"] = str(s.torch_home)
    n = 500 if s.gpu else 40
    from qgvae.data import load_split

    orig = load_split(s.dataset, s.root, "test")[:n].numpy()
    rng = np.random.default_rng(0)
    rec = np.clip(orig.astype(int) + rng.integers(-30, 31, orig.shape), 0, 255).astype(np.uint8)
    big_o, big_r = resize(orig, 256, "bilinear"), resize(rec, 256, "bilinear")  # vqwae protocol
    t: dict[str, float] = {}

    def timed(key: str, fn):
        t0 = time.perf_counter()
        out = fn()
        if s.gpu:
            torch.cuda.synchronize()
        t[key] = time.perf_counter() - t0
        return out

    ssim_ref = timed("ssim_psnr_cpu_skimage", lambda: ssim_batch(big_o, big_r))
    psnr_ref = psnr_batch(big_o, big_r)
    ssim_dev = timed("ssim_psnr_device", lambda: ssim_torch(big_o, big_r, s.device))
    psnr_dev = psnr_torch(big_o, big_r, s.device)
    d_ssim = float(np.abs(ssim_dev - ssim_ref).max())
    d_psnr = float(np.abs(psnr_dev - psnr_ref).max())
    lp: dict[str, Any] = {}
    for dev in dict.fromkeys(["cpu", s.device]):
        metric = LPIPSMetric(dev, backend="eager")
        lp[dev] = timed(f"lpips_{dev}", lambda m=metric: m(big_o, big_r))
    d_lpips = float(np.abs(lp[s.device] - lp["cpu"]).max())
    feats = {}
    for dev in dict.fromkeys(["cpu", s.device]):
        inc = InceptionFeatures(dev, backend="eager")
        feats[dev] = timed(f"inception_standin_{dev}", lambda i=inc: i(orig).cpu())
    f_cpu, f_dev = feats["cpu"].double(), feats[s.device].double()
    d_feat = float(((f_dev - f_cpu).abs().max() / f_cpu.abs().max().clamp_min(1e-12)).item())
    ok = d_ssim <= 1e-6 and d_psnr <= 1e-6 and d_lpips <= 1e-5 and d_feat <= 1e-4
    for key, seconds in t.items():
        print(f"  eval {key:<28} {seconds:8.2f} s for {n} images")
    report(
        "eval",
        ok,
        f"{n} images, {s.device} vs CPU: SSIM max |diff| {d_ssim:.1e}, PSNR {d_psnr:.1e} dB, "
        f"LPIPS {d_lpips:.1e}, Inception (stand-in) features {d_feat:.1e} relative",
        seconds=t,
    )


def check_prior(s: Setup) -> None:
    path = s.out / "prior_bench.json"
    args = ["prior", "bench", "--preset", "paper" if s.gpu else "quick", "--devices", s.device]
    args += ["--steps-gpu", "30", "--steps-cpu", "2", "--json", str(path)]
    proc = qgvae(*args, env=s.env, timeout=600)
    print("\n".join("  " + line for line in proc.stdout.strip().splitlines()[-6:]))
    report("prior", True, "qgvae prior bench ran", prior=json.loads(path.read_text()))


def check_precision(s: Setup) -> None:
    from qgvae.rendering.results import read_log
    from qgvae.training.precision import cpu_bf16_native

    steps = 1500 if s.gpu else 12
    bf16 = {"amp": "bf16"} if s.gpu else {"cpu_amp": "bf16" if cpu_bf16_native() else "none"}
    arms = {"fp32": {"amp": "none", "cpu_amp": "none"}, "bf16": bf16}
    curves: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in arms}
    for seed in (0, 1):
        for arm, amp in arms.items():
            run = s.out / "precision" / f"{arm}_seed{seed}"
            cfg = s.run_config("qgvae", seed=seed, max_steps=steps, val_every=steps // 6, **amp)
            cfg["train"].update(checkpoint_every=10**6, val_batches=8 if s.gpu else 1)
            t0 = time.perf_counter()
            qgvae("train", "--config-json", json.dumps(cfg), "--out", str(run), env=s.env)
            rows = read_log(run / "train_log.jsonl")
            meta = json.loads((run / "run.json").read_text())
            curves[arm][seed] = {
                "seconds": time.perf_counter() - t0,
                "autocast": meta["precision"]["autocast"],
                "val_psnr": {r["step"]: r["psnr"] for r in rows if r.get("split") == "val"},
            }
            val = curves[arm][seed]["val_psnr"]
            shown = " ".join(f"{v:.2f}" for v in val.values())
            print(
                f"  precision {arm} (autocast {meta['precision']['autocast']}) seed {seed}: "
                f"val PSNR {shown} dB, {curves[arm][seed]['seconds']:.0f} s"
            )
    last = lambda c: c["val_psnr"][max(c["val_psnr"])]  # the validation at the last step
    final = {a: [last(c) for c in curves[a].values()] for a in arms}
    mean = {a: statistics.mean(v) for a, v in final.items()}
    spread = max(final["fp32"]) - min(final["fp32"])
    gap = mean["bf16"] - mean["fp32"]
    within = abs(gap) <= spread
    used = {c["autocast"] for c in curves["bf16"].values()}
    verdict = "within" if within else "outside"
    seeds = ", ".join(f"{x:.2f}" for x in final["fp32"])
    detail = (
        f"final val PSNR fp32 {mean['fp32']:.2f} dB (seeds {seeds}), "
        f"bf16 {mean['bf16']:.2f} dB ({gap:+.2f} dB, {verdict} the fp32 seeds' spread of "
        f"{spread:.2f} dB) after {steps} steps; the bf16 arm ran with autocast {', '.join(used)}"
    )
    report("precision", True, detail, precision=curves, steps=steps, bf16_within_spread=within)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (the real check) or cpu (toy sizes)")
    ap.add_argument("--out", default=None, help="folder for the figures (default: a temp folder)")
    ap.add_argument(
        "--only",
        nargs="+",
        choices=CHECKS,
        help="default: all; on a GPU all but precision (6,000 QG-VAE steps: a call of its own)",
    )
    args = ap.parse_args()
    import tempfile

    import torch

    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    s = Setup(args.device, out)
    t0 = time.perf_counter()
    print(
        f"gpu_check: device {s.device}, torch {torch.__version__}, "
        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA")
        + f", {os.cpu_count()} CPU cores, output in {out}",
        flush=True,
    )
    if s.gpu and not torch.cuda.is_available():
        report("setup", False, "no CUDA device visible")
        return 1
    try:
        prepare(s)
    except Exception as exc:  # noqa: BLE001 - one line per failed check
        report("setup", False, f"{type(exc).__name__}: {exc}")
        return 1
    for name in args.only or [c for c in CHECKS if not (s.gpu and c == "precision")]:
        t1 = time.perf_counter()
        try:
            globals()[f"check_{name}"](s)
        except Exception as exc:  # noqa: BLE001
            report(name, False, f"{type(exc).__name__}: {str(exc)[:400]}")
            traceback.print_exc()
        print(f"  ({name}: {time.perf_counter() - t1:.0f} s)", flush=True)
    print(f"\ngpu_check summary ({time.perf_counter() - t0:.0f} s):")
    for r in RESULTS:
        print(f"{r['status']} {r['check']}: {r['detail']}")
    (out / "gpu_check.json").write_text(json.dumps(RESULTS, indent=1, default=str))
    return 0 if all(r["status"] != "FAIL" for r in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
