"""Welch's t-test: unpaired, unequal spreads; TOST for equivalence; power by quadrature over both variances."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from normreg.judge.designs.base import StatTest, register
from normreg.judge.stats import Comparison, array_p, array_stats, welch_values
from normreg.suite.spec import MetricSpec


@register
class Welch(StatTest):
    name = "welch"
    summary = "Welch's t-test: unpaired, unequal spreads (the default)"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return welch_values(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)

    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        diff, se, df = array_stats(a, b, "welch")
        return (diff, *array_p(diff, se, df, delta))
