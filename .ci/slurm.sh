#!/usr/bin/env bash
# The SLURM profile (workflow/profiles/slurm) against a real single-node SLURM cluster
# (../shared/tools/local-slurm.sh, with fake GPUs), CPU only:
#
#   1. one ablation target of the quick workflow (default: ablation_heads, i.e. two QG-VAE runs:
#      train, reconstruct and evaluate each, the floor's mean image and its evaluation, plus
#      their table and figure) with --profile workflow/profiles/slurm, in its own working
#      directory (results/slurm-ci/), the train and evaluate jobs asking SLURM for one (fake)
#      GPU, the CPU jobs (reconstruct, floor) for none;
#   2. two training jobs interrupted while they run, once each has written a checkpoint: one is
#      requeued (`scontrol requeue`, as preemption does: SIGTERM, back to the queue, started again
#      under the same job id), the other cancelled (`scancel`, as a time limit does: Snakemake
#      resubmits it, the profile's `retries`); both must resume from their checkpoints;
#   3. checks: every compute job went through sbatch (job ids in the Snakemake log, final state
#      in scontrol, a GPU in the TRES of train/evaluate, a SLURM log file), local rules did not;
#      the requeued job was restarted and the cancelled one resubmitted, and both resumed; every
#      metrics.json equals, number for number (tolerance 0), the one of the local run of the
#      same run folder (results/quick/ from .ci/quick.sh; if that is missing, the target is
#      first run locally into results/slurm-ci-local/).
#
# CI calls it from the repository root after the tests, with the virtual environment active and
# TORCH_HOME holding the LPIPS/FID weights, as root (SLURM is installed and started here).
# Knobs: SLURM_CI_TARGET, SLURM_CI_TIMEOUT (seconds for each Snakemake run), SLURM_CI_KEEP=1
# (leave the cluster running), SLURM_CI_LOCAL_REF (folder holding the local results/quick/),
# SHARED.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED:-$ROOT/../shared}
TARGET=${SLURM_CI_TARGET:-ablation_heads}
TIMEOUT=${SLURM_CI_TIMEOUT:-1500}
WORK=$ROOT/results/slurm-ci            # the SLURM run's working directory (ignored by git)
LOCAL_REF=${SLURM_CI_LOCAL_REF:-$ROOT}  # where the local run's results/quick/ is looked for
LOCAL_WORK=$ROOT/results/slurm-ci-local
LOG=$WORK/snakemake.log
: "${TORCH_HOME:?TORCH_HOME must point at the LPIPS/FID weights (see .ci/run)}"
export TORCH_HOME PYTHONUNBUFFERED=1 MPLBACKEND=Agg
SNAKEMAKE=(snakemake -s "$ROOT/Snakefile" --configfile "$ROOT/config/quick.yaml")

FAILED=0
pass() { printf 'PASS: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; FAILED=1; }
note() { printf '\n---- %s [%(%H:%M:%S)T]\n' "$*" -1; }

WATCHER=""
cleanup() {
  [ -n "$WATCHER" ] && kill "$WATCHER" 2>/dev/null || true
  if [ "${SLURM_CI_KEEP:-0}" != 1 ]; then bash "$SHARED/tools/local-slurm.sh" stop || true; fi
}
trap cleanup EXIT

note "SLURM (single node, fake GPUs)"
# One fake GPU (the tool's File=/dev/null gres allows only one), so GPU jobs run one at a time.
# MinJobAge 3600: finished jobs stay visible to squeue/scontrol for the checks below.
FAKE_GPUS=1 MIN_JOB_AGE=${MIN_JOB_AGE:-3600} bash "$SHARED/tools/local-slurm.sh" start \
  || { fail "could not start the local SLURM cluster"; exit 1; }
PARTITION=$(sinfo -h -o '%P' | sed -n 's/\*$//p' | head -1)
PARTITION=${PARTITION:-debug}

note "dry run of $TARGET with the SLURM profile"
rm -rf "$WORK"
mkdir -p "$WORK"
ln -s "$ROOT/config" "$WORK/config"    # the quick config's relative paths (paper_values)
# --workflow-profile none: only the SLURM profile applies (a default workflow profile, where
# Snakemake finds one, would add its local `resources: gpu=1` limit and override this profile).
SLURM_ARGS=(--profile "$ROOT/workflow/profiles/slurm" --workflow-profile none -d "$WORK"
            --slurm-status-command squeue          # no slurmdbd here: sacct would hang
            --slurm-init-seconds-before-status-checks 5
            --slurm-keep-successful-logs)
GPU_RULES=(train:gpu=1)   # quick.yaml asks for no GPU; train and every evaluate rule get one
export QGVAE_SLURM_PARTITION=$PARTITION          # the profile's partition variable, sbatch -p
"${SNAKEMAKE[@]}" "${SLURM_ARGS[@]}" --dry-run -- "$TARGET" > "$WORK/dryrun.log" 2>&1 \
  || { tail -40 "$WORK/dryrun.log"; fail "dry run"; exit 1; }
# The compute rules, by kind: every evaluate* rule (evaluate, evaluate_floor, the grouped
# evaluate_together_<i>) counts as evaluate; floor (the mean image) is a CPU job like reconstruct.
rule_kind() {
  case "$1" in
    train|reconstruct|floor) echo "$1" ;;
    evaluate|evaluate_floor|evaluate_together_[0-9]*) echo evaluate ;;
    *) echo local ;;
  esac
}
# expected number of jobs per kind, from the dry run's job table (its first one); every evaluate
# rule of the target asks for a GPU too (evaluate_floor, evaluate_together_<i>: their names come
# from the plan, so from the dry run)
declare -A EXPECTED=([train]=0 [reconstruct]=0 [floor]=0 [evaluate]=0)
while read -r rule count; do
  kind=$(rule_kind "$rule")
  if [ "$kind" != local ]; then EXPECTED[$kind]=$(( EXPECTED[$kind] + count )); fi
  if [ "$kind" = evaluate ]; then GPU_RULES+=("$rule:gpu=1"); fi
done < <(awk '/^Job stats:/ {n++; t = 1; next} t && NF == 0 && seen {t = 0}
              t && n == 1 && $2 ~ /^[0-9]+$/ && $1 != "total" {print $1, $2; seen = 1}' "$WORK/dryrun.log")
SLURM_ARGS+=(--set-resources "${GPU_RULES[@]}")   # one flag: a repeated one replaces the last
# metrics.json files: one per reconstructed run and one per floor
EXPECTED_METRICS=$(( EXPECTED[reconstruct] + EXPECTED[floor] ))
echo "compute jobs expected: train=${EXPECTED[train]} reconstruct=${EXPECTED[reconstruct]}" \
  "floor=${EXPECTED[floor]} evaluate=${EXPECTED[evaluate]} (metrics.json files: $EXPECTED_METRICS)"
[ "${EXPECTED[train]}" -gt 0 ] || { fail "$TARGET has no training job"; exit 1; }

# Interruptions, done to the first two training jobs once each has a checkpoint:
#   requeue  `scontrol requeue` = preemption with PreemptMode=REQUEUE (sbatch --requeue, from the
#            profile's slurm-requeue): SIGTERM, back to the queue, the same job id runs again;
#   cancel   `scancel` = a job killed for good (time limit, preemption by cancellation): SLURM
#            reports CANCELLED and Snakemake resubmits it (the profile's `retries`).
# Each writes "<job id> <run folder> <checkpoint step>" to $WORK/<action>.
checkpoint_step() {
  python -c 'import sys, torch; print(torch.load(sys.argv[1], map_location="cpu", weights_only=True)["step"])' "$1"
}
wait_state() {  # job state: until squeue shows it (at most 30 s)
  for _ in $(seq 1 120); do
    [ "$(squeue -h -j "$1" -o '%T' 2>/dev/null)" = "$2" ] && return 0; sleep 0.25
  done
}
interrupt_training() {
  local actions=(requeue cancel) done_runs=" " ck run variant jid action step
  [ "${EXPECTED[train]}" -ge 2 ] || actions=(requeue)
  for _ in $(seq 1 $((TIMEOUT * 4))); do
    [ "${#actions[@]}" -gt 0 ] || return 0
    for ck in $(find "$WORK/results" -name checkpoint.pt 2>/dev/null); do
      run=$(dirname "$ck")
      [ -e "$run/model.pt" ] || [[ "$done_runs" == *" $run "* ]] && continue
      variant=$(basename "$(dirname "$run")")
      # the plugin's job comment: rule_train_wildcards_<dataset>_<method>_<variant>_<seed>
      jid=$(squeue -h -t RUNNING -o '%i|%k' | awk -F'|' -v v="_${variant}_" \
              'index($2, "rule_train_wildcards_") == 1 && index($2, v) {print $1; exit}')
      [ -n "$jid" ] && [ ! -e "$run/model.pt" ] || continue
      action=${actions[0]}; actions=("${actions[@]:1}"); done_runs+="$run "
      if [ "$action" = requeue ]; then
        scontrol requeue "$jid"
        wait_state "$jid" PENDING
        step=$(checkpoint_step "$ck")   # written on SIGTERM, before the job starts again
        # a requeued job waits 120 s before it may start again: let it start now
        scontrol update JobId="$jid" StartTime=now || true
      else
        scancel "$jid"
        wait_state "$jid" CANCELLED
        step=$(checkpoint_step "$ck")   # before Snakemake resubmits the job
      fi
      printf '%s %s %s\n' "$jid" "${run#"$WORK"/}" "$step" > "$WORK/$action"
      echo "interrupted training job $jid ($action): ${run#"$WORK"/}, checkpoint at step $step"
      break
    done
    sleep 0.25
  done
}

note "$TARGET through SLURM"
interrupt_training & WATCHER=$!
start=$(date +%s)
set +e
timeout "$TIMEOUT" "${SNAKEMAKE[@]}" "${SLURM_ARGS[@]}" -- "$TARGET" > "$LOG" 2>&1
rc=$?
set -e
SLURM_SECONDS=$(( $(date +%s) - start ))
kill "$WATCHER" 2>/dev/null || true; wait "$WATCHER" 2>/dev/null || true; WATCHER=""
echo "snakemake exit $rc after ${SLURM_SECONDS} s (log: ${LOG#"$ROOT"/})"
if [ "$rc" -ne 0 ]; then
  tail -60 "$LOG"
  fail "$TARGET through SLURM (exit $rc$( [ "$rc" = 124 ] && echo ", timed out after ${TIMEOUT} s"))"
  exit 1
fi
pass "$TARGET through SLURM finished in ${SLURM_SECONDS} s"

note "did the jobs run through SLURM?"
CANCELLED_JID=""; [ -s "$WORK/cancel" ] && read -r CANCELLED_JID _ _ < "$WORK/cancel"
# "Job 3 has been submitted with SLURM jobid 17 (log: .../slurm_logs/rule_train/<wildcards>/17.log)."
mapfile -t SUBMITTED < <(sed -n 's/.*submitted with SLURM jobid \([0-9]*\) (log: \(.*\))\.$/\1 \2/p' "$LOG")
declare -A GOT=([train]=0 [reconstruct]=0 [floor]=0 [evaluate]=0)
for line in "${SUBMITTED[@]}"; do
  jid=${line%% *}; logfile=${line#* }
  rule=$(sed -n 's#.*/slurm_logs/rule_\([a-z0-9_]*\)/.*#\1#p' <<<"$logfile")
  kind=$(rule_kind "$rule")
  info=$(scontrol show job "$jid" 2>/dev/null || true)
  state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$info")
  tres=$(sed -n 's/.*TresPerJob=\([^ ]*\).*/\1/p' <<<"$info")
  part=$(sed -n 's/.*Partition=\([^ ]*\).*/\1/p' <<<"$info")
  restarts=$(sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' <<<"$info")
  requeue=$(sed -n 's/.*Requeue=\([0-9]*\).*/\1/p' <<<"$info")
  printf '  SLURM job %-4s %-12s %-10s partition=%-6s tres=%-12s requeue=%s restarts=%s\n' \
    "$jid" "$rule" "${state:-?}" "${part:-?}" "${tres:-none}" "${requeue:-?}" "${restarts:-?}"
  [ "$requeue" = 1 ] || fail "SLURM job $jid ($rule) was not submitted with --requeue"
  if [ "$kind" = local ]; then
    fail "rule ${rule:-?} was submitted to SLURM (job $jid) but should be a local rule"
  else
    GOT[$kind]=$(( GOT[$kind] + 1 ))
  fi
  want=COMPLETED; [ "$jid" = "$CANCELLED_JID" ] && want=CANCELLED
  [ "$state" = "$want" ] || fail "SLURM job $jid ($rule) is ${state:-unknown}, not $want"
  if [ "$kind" = reconstruct ] || [ "$kind" = floor ]; then
    [[ "$tres" != *gpu* ]] || fail "SLURM job $jid ($rule) requested a GPU (TresPerJob=$tres)"
  else
    [[ "$tres" == *gpu:1* ]] || fail "SLURM job $jid ($rule) did not request a GPU (TresPerJob=${tres:-none})"
  fi
  [ "$part" = "$PARTITION" ] || fail "SLURM job $jid ($rule) ran in partition ${part:-?}, not $PARTITION"
  [ -s "$logfile" ] || fail "SLURM job $jid ($rule) has no log file $logfile"
done
for rule in train reconstruct floor evaluate; do
  want=${EXPECTED[$rule]}; extra=""
  if [ "$rule" = train ] && [ -n "$CANCELLED_JID" ]; then
    want=$(( want + 1 )); extra=" (one resubmitted after scancel)"
  fi
  if [ "${GOT[$rule]}" -eq "$want" ]; then
    pass "$rule: ${GOT[$rule]} jobs submitted with sbatch$extra, all finished as expected"
  else
    fail "$rule: ${GOT[$rule]} jobs submitted to SLURM, expected $want$extra"
  fi
done
if grep -q "localrule prepare_data" "$LOG" && grep -q "localrule fetch_weights" "$LOG"; then
  pass "downloads (prepare_data, fetch_weights) ran as local rules"
else
  fail "prepare_data/fetch_weights did not run as local rules"
fi
echo "SLURM job ids: $(printf '%s\n' "${SUBMITTED[@]}" | cut -d' ' -f1 | tr '\n' ' ')"

note "interrupted training jobs"
resumed_from() {
  python -c 'import json, sys; print(json.load(open(sys.argv[1]))["resumed_from"])' "$1/run.json"
}
if [ -s "$WORK/requeue" ]; then
  read -r JID RUN STEP < "$WORK/requeue"
  restarts=$(scontrol show job "$JID" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
  resumed=$(resumed_from "$WORK/$RUN")
  echo "requeued job $JID at step $STEP: Restarts=$restarts; $RUN/run.json resumed_from=$resumed"
  [ "${restarts:-0}" -ge 1 ] && pass "SLURM requeued training job $JID and ran it again under the same id" \
    || fail "training job $JID was not restarted by SLURM (Restarts=${restarts:-?})"
  [ "$resumed" != "[]" ] && [ -s "$WORK/$RUN/model.pt" ] \
    && pass "the requeued training resumed from its checkpoint (resumed_from=$resumed) and finished" \
    || fail "the requeued training did not resume (resumed_from=$resumed) or did not finish"
else
  fail "no training job could be requeued (no checkpoint seen while a training job ran)"
fi
if [ "${EXPECTED[train]}" -ge 2 ]; then
  if [ -s "$WORK/cancel" ]; then
    read -r JID RUN STEP < "$WORK/cancel"
    resumed=$(resumed_from "$WORK/$RUN")
    variant=$(basename "$(dirname "$RUN")")
    retry=$(printf '%s\n' "${SUBMITTED[@]}" | grep "/rule_train/[^/]*_${variant}_[0-9]*/" \
              | cut -d' ' -f1 | grep -vx "$JID" | head -1 || true)
    echo "cancelled job $JID at step $STEP; resubmitted as job ${retry:-?}; $RUN/run.json resumed_from=$resumed"
    grep -q "Trying to restart job" "$LOG" && [ -n "$retry" ] \
      && pass "Snakemake resubmitted the cancelled training job $JID (retries) as job $retry" \
      || fail "the cancelled training job $JID was not resubmitted"
    [ "$resumed" != "[]" ] && [ -s "$WORK/$RUN/model.pt" ] \
      && pass "the resubmitted training resumed from its checkpoint (resumed_from=$resumed) and finished" \
      || fail "the resubmitted training did not resume (resumed_from=$resumed) or did not finish"
  else
    fail "no second training job could be cancelled (no checkpoint seen while it ran)"
  fi
fi

note "metrics: SLURM run vs local run"
mapfile -t METRICS < <(cd "$WORK" && find results -name metrics.json | sort)
[ "${#METRICS[@]}" -eq "$EXPECTED_METRICS" ] && [ "${#METRICS[@]}" -gt 0 ] \
  || fail "${#METRICS[@]} metrics.json under $WORK/results, expected $EXPECTED_METRICS"
missing=0
for m in "${METRICS[@]}"; do [ -s "$LOCAL_REF/$m" ] || missing=1; done
if [ "$missing" = 1 ]; then
  echo "no local results for every run of $TARGET under $LOCAL_REF/results: running it locally"
  rm -rf "$LOCAL_WORK"; mkdir -p "$LOCAL_WORK"; ln -s "$ROOT/config" "$LOCAL_WORK/config"
  start=$(date +%s)
  timeout "$TIMEOUT" "${SNAKEMAKE[@]}" --workflow-profile none -d "$LOCAL_WORK" --cores 2 \
    -- "$TARGET" > "$LOCAL_WORK/snakemake.log" 2>&1 \
    || { tail -40 "$LOCAL_WORK/snakemake.log"; fail "local run of $TARGET"; exit 1; }
  echo "local run: $(( $(date +%s) - start )) s"
  LOCAL_REF=$LOCAL_WORK
fi
python - "$WORK" "$LOCAL_REF" "${METRICS[@]}" <<'PY' || FAILED=1
"""Every number in each metrics.json must equal the local run's exactly (tolerance 0):
the quick workflow is deterministic on CPU (same code, same data, one thread per job)."""
import json
import math
import sys
from pathlib import Path

slurm, local, files = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
# Bookkeeping, not results: when, how long, where, with what (and whether a cache was warm).
# Everything else (SSIM, PSNR, LPIPS, rFID, code usage, image counts, ...) must be identical.
IGNORE = {"timing", "cpu_s", "elapsed_s", "created", "hardware", "versions", "qgvae_commit",
          "git_commit", "per_image_csv", "originals_features_cached", "feature_cache_recomputed"}

def ignored(path):
    return any(part.split("[")[0] in IGNORE for part in path.split("."))

def leaves(obj, path=""):
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{path}[{i}]")
    else:
        yield path, obj

bad = 0
for name in files:
    a = dict(leaves(json.loads((slurm / name).read_text())))
    b = dict(leaves(json.loads((local / name).read_text())))
    numbers = [k for k, v in a.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and not ignored(k)]
    diffs = [k for k in sorted(set(a) | set(b))
             if not ignored(k) and not (
                 a.get(k) == b.get(k)
                 or (isinstance(a.get(k), float) and isinstance(b.get(k), float)
                     and math.isnan(a[k]) and math.isnan(b[k])))]
    run = name.rsplit("/", 1)[0]
    proto = next((k.split(".")[1] for k in a if k.startswith("protocols.")), "")
    headline = ", ".join(
        f"{label} {a[key]:.6g}" for label, key in (
            ("SSIM", f"protocols.{proto}.ssim.mean"), ("PSNR", f"protocols.{proto}.psnr.mean"),
            ("LPIPS", f"protocols.{proto}.lpips.mean"), ("rFID", f"protocols.{proto}.rfid.value"))
        if isinstance(a.get(key), (int, float)))
    if diffs:
        bad += 1
        print(f"FAIL: {run}: {len(diffs)} of {len(a)} values differ from the local run")
        for k in diffs[:10]:
            print(f"        {k}: slurm={a.get(k)!r} local={b.get(k)!r}")
    else:
        print(f"PASS: {run}: all {len(numbers)} numbers equal the local run's exactly "
              f"({proto}: {headline})")
sys.exit(1 if bad else 0)
PY

note "summary"
if [ "$FAILED" = 0 ]; then
  echo "PASS: SLURM profile: $TARGET ran through SLURM in ${SLURM_SECONDS} s; its training" \
       "survived requeue and cancellation; its metrics equal the local run's"
else
  echo "FAIL: SLURM profile checks failed (see FAIL lines above; logs under ${WORK#"$ROOT"/}/)"
fi
exit "$FAILED"
