"""The permutation design when the two sides' spreads differ: how often it calls equal means different.

    python benchmarks/permutation_spreads.py              # 20,000 simulated pairs a case
    python benchmarks/permutation_spreads.py --reps 5000

Both sides are normal with the same mean; the candidate's spread is 1, 3 or 10 times the reference's. Each pair is
judged by normreg's permutation test (`normreg.judge.designs.permutation`, exact over all splits) at alpha 0.05,
and by the same test with a studentized statistic (Welch's t for each split instead of the difference of means),
which is the usual proposal for unequal spreads. The README quotes these rates; Welch's test, for comparison, is
simulated in the tests. A permutation test's null hypothesis is one distribution for both sides, so unequal
spreads are outside what it promises.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from normreg.judge.designs.permutation import _p_values, _tails, splits  # noqa: E402

CASES = [(5, 5), (20, 20), (3, 8), (8, 3)]  # (reference seeds, candidate seeds)
RATIOS = [1, 3, 10]


def studentized_p(xa: np.ndarray, xb: np.ndarray, mask: np.ndarray, exact: bool) -> np.ndarray:
    """Two-sided p of the permutation test whose statistic is Welch's t of candidate minus reference."""
    n_a, n_b = xa.shape[-1], xb.shape[-1]

    def t(x: np.ndarray, m: np.ndarray) -> np.ndarray:
        x = x - x.mean(-1, keepdims=True)  # t does not move with a shift; centring keeps the squares exact
        s_b, q_b = x @ m.T, (x * x) @ m.T
        s, q = x.sum(-1, keepdims=True), (x * x).sum(-1, keepdims=True)
        m_b, m_a = s_b / n_b, (s - s_b) / n_a
        v_b = np.maximum(q_b - n_b * m_b ** 2, 0) / (n_b - 1)
        v_a = np.maximum(q - q_b - n_a * m_a ** 2, 0) / (n_a - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.nan_to_num((m_b - m_a) / np.sqrt(v_a / n_a + v_b / n_b), nan=0.0)

    x = np.concatenate([xa, xb], -1)
    identity = np.r_[np.zeros(n_a), np.ones(n_b)][None]
    up, down = _tails(t(x, mask), t(x, identity), exact)
    return np.minimum(1.0, 2.0 * np.minimum(up, down))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=20000)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    rng = np.random.default_rng(20261128)
    print(f"false alarms at alpha {args.alpha}, {args.reps} simulated pairs a case (equal means)")
    print("ref seeds  cand seeds  spread ratio  difference of means  studentized  same samples rejected")
    for n_a, n_b in CASES:
        mask, exact = splits(n_a, n_b)
        for ratio in RATIOS:
            xa = rng.normal(0.0, 1.0, (args.reps, n_a))
            xb = rng.normal(0.0, float(ratio), (args.reps, n_b))
            p_diff = np.concatenate([_p_values(xa[i:i + 500], xb[i:i + 500], 0.0, mask, exact)[1]
                                     for i in range(0, args.reps, 500)])
            p_t = np.concatenate([studentized_p(xa[i:i + 500], xb[i:i + 500], mask, exact)
                                  for i in range(0, args.reps, 500)])
            same = np.mean((p_diff < args.alpha) == (p_t < args.alpha))
            print(f"{n_a:9d}  {n_b:10d}  {ratio:12d}  {np.mean(p_diff < args.alpha):19.4f}  "
                  f"{np.mean(p_t < args.alpha):11.4f}  {same:21.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
