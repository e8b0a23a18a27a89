"""Wall time of normreg on each bad file of tests/data/bad/ (start-up included): `run` on each bad suite, `report`
on each bad report, `compare` on each bad baseline and CSV, and `run`/`report` on files that are not regular
(/dev/zero, a FIFO nobody writes to). Each must exit 2 within a second on an idle machine, however hostile the
file (alias bombs, deep nesting, huge integers, lone surrogates, 100,000 nested brackets).

    python benchmarks/bad_inputs.py [--repeat 3]

Measured here, not asserted in tests, because shared machines are noisy.
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
BAD = ROOT / "tests" / "data" / "bad"


# Valid files of the corpus: hostile names in a valid suite (`repro` must encode them,
# tests/end_to_end/test_refused.py), and a
# valid baseline refused only as the stored baseline of another suite (tests/end_to_end/test_bad_inputs.py).
VALID = {"repro_injection", "baseline_other_suite"}


def _commands(tmp: str) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for path in sorted(BAD.iterdir()):
        if path.stem in VALID:
            continue
        if path.suffix == ".yaml":
            out.append((path.stem, ["run", str(path), "--out", f"{tmp}/{path.stem}"]))
        elif path.stem.startswith("report_"):
            out.append((path.stem, ["report", str(path)]))
        else:
            out.append((path.stem, ["compare", f"{path}#a", f"{path}#b"]))
    fifo = Path(tmp) / "fifo.yaml"
    os.mkfifo(fifo)
    out += [("run /dev/zero", ["run", "/dev/zero"]), ("run FIFO", ["run", str(fifo)]),
            ("report /dev/urandom", ["report", "/dev/urandom"])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in _commands(tmp):
            times, codes = [], set()
            for _ in range(args.repeat):
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "normreg.cli", *command], capture_output=True,
                                      text=True, cwd=ROOT, timeout=60)
                times.append(time.perf_counter() - start)
                codes.add(proc.returncode)
                shutil.rmtree(Path(tmp) / name, ignore_errors=True)
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"{name:28s} exit {','.join(map(str, sorted(codes)))}  {median:.2f} s")
    print(f"slowest median: {worst:.2f} s")


if __name__ == "__main__":
    main()
