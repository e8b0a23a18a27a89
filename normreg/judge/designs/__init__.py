"""Statistical tests, one file each, registered by name (the suite's `stats.design`). See `base.StatTest`."""

from __future__ import annotations

from collections.abc import Mapping

from normreg.judge.designs.base import DESIGNS, StatTest, get, register
from normreg.judge.stats import Comparison
from normreg.suite.model import MetricSpec


def names() -> tuple[str, ...]:
    """Every design registered by a file of this package (found on first use)."""
    return DESIGNS.names()


def compare_values(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
                   design: str = "welch", a_name: str = "a", b_name: str = "b") -> Comparison:
    """Per-seed values {seed: value} on each side, compared with the test a suite's `design` names."""
    return get(design).compare(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)


__all__ = ["DESIGNS", "StatTest", "compare_values", "get", "names", "register"]
