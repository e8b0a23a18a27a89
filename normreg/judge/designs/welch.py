"""Welch's t-test: unpaired, unequal spreads; TOST for equivalence; power by quadrature over both variances."""

from __future__ import annotations

from collections.abc import Mapping

from normreg.judge.designs.base import TTest, register
from normreg.judge.stats import Comparison, welch_values
from normreg.suite.spec import MetricSpec


@register("welch")
class Welch(TTest):
    name = "welch"
    summary = "Welch's t-test: unpaired, unequal spreads (the default)"

    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        return welch_values(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)
