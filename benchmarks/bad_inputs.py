"""Wall time of `normreg run` on each bad suite of tests/data/bad/ (start-up included): each must exit 2 within
a second on an idle machine, however hostile the file (alias bombs, deep nesting, huge seed counts).

    python benchmarks/bad_inputs.py [--repeat 3]

Measured here, not asserted in tests, because shared machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BAD = ROOT / "tests" / "data" / "bad"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(BAD.glob("*.yaml")):
            times, codes = [], set()
            for i in range(args.repeat):
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "normreg.cli", "run", str(path), "--out",
                                       f"{tmp}/{path.stem}-{i}"], capture_output=True, text=True, cwd=ROOT)
                times.append(time.perf_counter() - start)
                codes.add(proc.returncode)
            median = statistics.median(times)
            worst = max(worst, median)
            print(f"{path.stem:28s} exit {','.join(map(str, sorted(codes)))}  {median:.2f} s")
    print(f"slowest median: {worst:.2f} s")


if __name__ == "__main__":
    main()
