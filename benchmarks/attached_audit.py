"""What the audit attached to a run with a failing (or expected-failing) pair costs: `likely_causes` on each story
suite's buggy variant, in a process that has already imported torch and built the models (as a run has, after
its up-front check). Target (issue: overhead): at most about 1 s.

    python benchmarks/attached_audit.py [--repeat 3]

Measured here, not asserted in tests, because shared machines are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STORIES = [("domain_adapt", "twin"), ("frozen_backbone", "backbone_train"), ("gan_discriminator", "separate"),
           ("rl_acting", "train_acting")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from normreg.auditing import likely_causes
    from normreg.auditing.preflight import preflight
    from normreg.suite.spec import load_suite

    for name, buggy in STORIES:
        suite = load_suite(ROOT / "suites" / f"{name}.yaml")
        preflight(suite)  # as in a run: torch, Lightning and the models are already imported
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            likely_causes(suite, [buggy])
            times.append(time.perf_counter() - start)
        print(f"{name:18s} first call {times[0]:5.2f} s  median {statistics.median(times):5.2f} s")


if __name__ == "__main__":
    main()
