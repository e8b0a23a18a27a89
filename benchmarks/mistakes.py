"""How long `normreg run` takes to refuse a suite whose mistake needs the model, next to the bare import of torch and
Lightning on the same machine at the same moment, and whether it leaves anything on disk.

    python benchmarks/mistakes.py              # 3 rounds
    python benchmarks/mistakes.py --repeat 5

Each round times `python -c "import torch, lightning"` and then each mistake (a metric the model does not log, a
misspelt trainer option, a class that does not exist, an accelerator the machine lacks), interleaved, so that the
load of a shared machine falls on both alike. Target (issue 19 item 4): every mistake refused (exit 2) within 2 s
of the bare import's median, with no run directory left. Measured here, not asserted in tests: shared machines
are noisy. Last measured (2 cores, load about 15, medians of 3): bare import 23.1 s; metric typo 18.3 s, trainer
typo 21.4 s, missing class 23.0 s, accelerator tpu 19.1 s; before the change 34.8 to 40.6 s against a bare import
of 20.5 s, each leaving a run directory (docs/stops-and-failures.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_MODELS = ROOT / "tests" / "data" / "suites" / "tiny_models.py"

SUITE = """\
name: mistake
data: {{target: tiny_models:Blobs, args: {{n: 64, batch_size: 32}}}}
trainer: {{max_epochs: 1{trainer}}}
seeds: 2
metrics: {{{metric}: {{goal: max, min_effect: 0.05}}}}
variants:
  a: {{model: tiny_models:{model}}}
  b: {{model: tiny_models:Classifier}}
"""

MISTAKES = {
    "metric typo": {"metric": "acc_typo"},
    "trainer typo": {"trainer": ", max_epoch: 1"},
    "missing class": {"model": "Clasifier"},
    "accelerator tpu": {"trainer": ", accelerator: tpu"},
}


def _timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, res.returncode, (res.stdout + res.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"import torch, lightning": [], **{m: [] for m in MISTAKES}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shutil.copy(TINY_MODELS, folder / "tiny_models.py")
        for name, fields in MISTAKES.items():
            text = SUITE.format(**{"trainer": "", "metric": "acc", "model": "Classifier", **fields})
            (folder / f"{name.replace(' ', '_')}.yaml").write_text(text)
        for _ in range(args.repeat):
            seconds, code, _ = _timed([sys.executable, "-c", "import torch, lightning"], folder)
            times["import torch, lightning"].append(seconds)
            for name in MISTAKES:
                seconds, code, output = _timed([sys.executable, "-m", "normreg.cli", "run",
                                                f"{name.replace(' ', '_')}.yaml", "--baselines", "b"], folder)
                if code != 2:
                    raise SystemExit(f"{name}: expected exit 2, got {code}: {output}")
                left = list((folder / "runs").iterdir()) if (folder / "runs").exists() else []
                if left:
                    raise SystemExit(f"{name}: left {left} on disk")
                times[name].append(seconds)
    bare = statistics.median(times["import torch, lightning"])
    print(f"{'what':26} {'median s':>9} {'min s':>7} {'max s':>7} {'- import':>9}")
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name == "import torch, lightning" else f"{median - bare:+9.2f}"
        print(f"{name:26} {median:9.2f} {min(values):7.2f} {max(values):7.2f} {extra}")
    print(f"({args.repeat} rounds, {os.cpu_count()} cores; target: every mistake within 2 s of the bare import, "
          "exit 2, nothing left on disk)")


if __name__ == "__main__":
    main()
