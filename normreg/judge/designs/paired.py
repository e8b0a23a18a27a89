"""The paired t-test on per-seed differences: runs sharing a seed share initial weights and data order."""

from __future__ import annotations

from collections.abc import Mapping

from normreg.judge.designs.base import TTest, register
from normreg.judge.stats import Comparison, paired
from normreg.suite.spec import MetricSpec


@register("paired")
class Paired(TTest):
    name = "paired"
    summary = "paired t-test on per-seed differences (same seed = same initial weights and data order)"
    staged_calibration = "paired"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return paired(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)

