#!/usr/bin/env bash
# GPU check, in three sections (SECTIONS, default all three; they run in this order):
#   local: times `normreg run` on the flagship and on every story suite, with the defaults (GPUs visible) and with
#          the GPUs hidden (CUDA_VISIBLE_DEVICES=), and compares per-run durations by suite and device;
#   tests: `pytest -m gpu` (the local executor's and Ray's GPU tests) and the slow test that builds a three-node
#          Ray cluster with `ray start` (one node offering the GPU) and trains on it with --ray-address.
#   ray:   the same suites with `--executor ray` (a local Ray instance normreg starts) against the local executor,
#          and the flagship moved onto the GPU both ways, checking that the per-seed values are the same;
# Writes a summary to $OUT/gpu_summary.txt (OUT defaults to /tmp) and the reports and logs beside it.
#
#   OUT=/somewhere bash benchmarks/gpu_check.sh
#   SECTIONS="ray tests" OUT=/somewhere bash benchmarks/gpu_check.sh
#
# Needs torch, Lightning, scipy, pandas, typer, pyyaml and scikit-learn; normreg itself comes from this checkout
# through PYTHONPATH (nothing is installed). Suites whose modules cannot be imported here (the RL stories need
# gymnasium) are left out and the summary says so. Without a CUDA device the GPU timings are skipped and only a
# short smoke run and the (skipping) GPU tests run. The ray section and the cluster test need Ray installed.
# About 5 minutes for `local` on a 16-core H200 machine.
set -u
OUT=${OUT:-/tmp}
SECTIONS=${SECTIONS:-local ray tests}
want() { case " $SECTIONS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/normreg-gpu-check.XXXXXX")
SUMMARY="$OUT/gpu_summary.txt"
mkdir -p "$OUT"
: >"$SUMMARY"
cd "$ROOT" || exit 1

log() { echo "$*" | tee -a "$SUMMARY"; }

# timed LABEL COMMAND...: run, log exit code, wall time and the outcome line; output kept in $OUT/LABEL.log
timed() {
    local label=$1
    shift
    local start end rc
    start=$(date +%s.%N)
    "$@" >"$OUT/$label.log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    log "$(printf '%-22s exit %-3s wall %6.1fs  %s' "$label" "$rc" "$(awk "BEGIN {print $end - $start}")" \
        "$(grep -E '^Outcome:' "$OUT/$label.log" | tail -1)")"
}

log "normreg GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null)"
$PY - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import torch
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
print(f"python torch {torch.__version__}, CUDA available: {n > 0}, GPUs: "
      f"{[torch.cuda.get_device_name(i) for i in range(n)]}")
import importlib.util
print("importable:", {m: importlib.util.find_spec(m) is not None
                      for m in ("pytorch_lightning", "lightning", "gymnasium", "pytest", "ray")})
EOF
GPUS=$($PY -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)

# The story suites whose targets import here (SUITES: another glob, for a quick try of this script).
mkdir -p "$WORK/suites"
for s in ${SUITES:-suites/*.yaml}; do
    if grep -q "normreg.examples.rl" "$s" && ! $PY -c "import gymnasium" 2>/dev/null; then
        log "left out: $s (gymnasium is not installed here)"
        continue
    fi
    cp "$s" "$WORK/suites/"
done

run() { $PY -m normreg.cli run "$@"; }

if [ "$GPUS" -gt 0 ] && want local; then
    log ""
    log "== wall time (defaults: GPUs visible; cpu-only: CUDA_VISIBLE_DEVICES= hidden) =="
    timed flagship-default run suites/domain_adapt.yaml --out "$WORK/f-gpu" --report "$OUT/flagship-default.json"
    timed flagship-cpu-only env CUDA_VISIBLE_DEVICES= \
        "$PY" -m normreg.cli run suites/domain_adapt.yaml --out "$WORK/f-cpu" --report "$OUT/flagship-cpu-only.json"
    timed suites-default run "$WORK/suites" --out "$WORK/a-gpu" --report "$OUT/suites-default.json"
    timed suites-cpu-only env CUDA_VISIBLE_DEVICES= \
        "$PY" -m normreg.cli run "$WORK/suites" --out "$WORK/a-cpu" --report "$OUT/suites-cpu-only.json"
    timed suites-all-on-gpu run "$WORK/suites" --set trainer.accelerator=gpu --out "$WORK/a-allgpu" \
        --report "$OUT/suites-all-on-gpu.json"
    log ""
    log "== per-run duration by suite and device (median s; runs) =="
    $PY - "$OUT" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, statistics, sys
from pathlib import Path
out = Path(sys.argv[1])
for name in ("flagship-default", "flagship-cpu-only", "suites-default", "suites-cpu-only", "suites-all-on-gpu"):
    path = out / f"{name}.json"
    if not path.exists():
        print(f"{name}: no report")
        continue
    data = json.loads(path.read_text())
    groups = {}
    for r in data["runs"]:
        groups.setdefault((r["suite"], r.get("device", "?")), []).append(r["duration_s"])
    print(f"{name}: verdict {data['verdict']}, devices {data['environment'].get('devices')}")
    for (suite, device), d in sorted(groups.items()):
        print(f"  {suite:28s} {device:32s} {statistics.median(d):7.2f}  ({len(d)})")
EOF
elif [ "$GPUS" -eq 0 ]; then
    log ""
    log "no CUDA device here: the GPU timings are skipped; a short smoke run instead"
    timed smoke-cpu run tests/data/suites/tiny.yaml --seeds 2 --out "$WORK/smoke" --report "$OUT/smoke.json"
    log "(the tiny suite has a variant broken on purpose: exit 3 is its expected outcome)"
fi

if want tests; then
    log ""
    log "== pytest -m gpu; the three-node Ray cluster test =="
    if $PY -c "import pytest" 2>/dev/null; then
        $PY -m pytest -q -m gpu tests/execution/test_worker.py tests/execution/executors/test_ray.py -p no:cacheprovider -rs >"$OUT/pytest-gpu.log" 2>&1
        log "pytest -m gpu: exit $?, $(tail -1 "$OUT/pytest-gpu.log")"
        $PY -m pytest -q -m slow tests/execution/executors/test_ray_cluster.py -p no:cacheprovider -rs >"$OUT/pytest-cluster.log" 2>&1
        log "pytest -m slow tests/execution/executors/test_ray_cluster.py: exit $?, $(tail -1 "$OUT/pytest-cluster.log")"
    else
        log "pytest is not installed here: skipped"
    fi
fi

# same_values REPORT_A REPORT_B: are the per-seed values of the runs both made (ok) the same?
same_values() {
    if [ ! -f "$1" ] || [ ! -f "$2" ]; then
        log "  values: $1 or $2 is missing (see the logs)"
        return
    fi
    $PY - "$1" "$2" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
va, vb = ({(r["suite"], r["variant"], r["seed"]): r["metrics"] for r in d["runs"] if r["status"] == "ok"}
          for d in (a, b))
both = va.keys() & vb.keys()
diff = [k for k in sorted(both) if va[k] != vb[k]]
print(f"  values {sys.argv[1].rsplit('/', 1)[-1]} vs {sys.argv[2].rsplit('/', 1)[-1]}: {len(both)} runs in both, "
      f"{len(diff)} differ{': ' + str(diff[:3]) if diff else ''}; verdicts {a['verdict']} / {b['verdict']}")
EOF
}

if want ray; then
    log ""
    if ! $PY -c "import ray" 2>/dev/null; then
        log "ray section: Ray is not installed here: skipped"
    else
        log "== --executor ray (a local instance) against the local executor =="
        timed flagship-ray run suites/domain_adapt.yaml --executor ray --out "$WORK/f-ray" \
            --report "$OUT/flagship-ray.json"
        [ -f "$OUT/flagship-default.json" ] || timed flagship-default run suites/domain_adapt.yaml \
            --out "$WORK/f-gpu" --report "$OUT/flagship-default.json"
        same_values "$OUT/flagship-ray.json" "$OUT/flagship-default.json"
        if [ "$GPUS" -gt 0 ]; then
            timed flagship-on-gpu-ray run suites/domain_adapt.yaml --executor ray --set trainer.accelerator=gpu \
                --runs-per-gpu 8 --out "$WORK/fg-ray" --report "$OUT/flagship-on-gpu-ray.json"
            timed flagship-on-gpu-local run suites/domain_adapt.yaml --set trainer.accelerator=gpu \
                --runs-per-gpu 8 --out "$WORK/fg-local" --report "$OUT/flagship-on-gpu-local.json"
            same_values "$OUT/flagship-on-gpu-ray.json" "$OUT/flagship-on-gpu-local.json"
        fi
        timed suites-ray run "$WORK/suites" --executor ray --out "$WORK/a-ray" --report "$OUT/suites-ray.json"
        [ -f "$OUT/suites-default.json" ] || timed suites-default run "$WORK/suites" --out "$WORK/a-gpu" \
            --report "$OUT/suites-default.json"
        same_values "$OUT/suites-ray.json" "$OUT/suites-default.json"
        $PY - "$OUT" <<'EOF' 2>&1 | tee -a "$SUMMARY"
import json, statistics, sys
from pathlib import Path
for name in ("flagship-ray", "flagship-default", "flagship-on-gpu-ray", "flagship-on-gpu-local", "suites-ray",
             "suites-default"):
    path = Path(sys.argv[1]) / f"{name}.json"
    if path.exists():
        runs = json.loads(path.read_text())["runs"]
        devices = sorted({r.get("device", "?") for r in runs})
        print(f"  {name}: {len(runs)} runs, median {statistics.median(r['duration_s'] for r in runs):.2f} s a run, "
              f"devices {devices}")
EOF
    fi
fi

rm -rf "$WORK"
log "done: $(date -u +%H:%M:%SZ)"
