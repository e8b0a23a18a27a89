"""The paired t-test on per-seed differences: runs sharing a seed share initial weights and data order."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from normreg.judge.designs.base import StatTest, register
from normreg.judge.stats import Comparison, array_p, array_stats, paired
from normreg.suite.spec import MetricSpec


@register
class Paired(StatTest):
    name = "paired"
    summary = "paired t-test on per-seed differences (same seed = same initial weights and data order)"
    staged_calibration = "paired"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return paired(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)

    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        diff, se, df = array_stats(a, b, "paired")
        return (diff, *array_p(diff, se, df, delta))

    @property
    def pairs_by_seed(self) -> bool:
        return True
