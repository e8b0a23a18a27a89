"""Statistical tests, one file each, registered by name (the suite's `stats.design`). See `base.StatTest`."""

from __future__ import annotations

import math
from collections.abc import Mapping

from normreg.judge.designs.base import DESIGNS, StatTest, get, register
from normreg.judge.stats import Comparison, design_effect
from normreg.suite.model import MetricSpec


def names() -> tuple[str, ...]:
    """Every design registered by a file of this package (found on first use)."""
    return DESIGNS.names()


def compare_values(a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float = 0.05,
                   design: str = "welch", a_name: str = "a", b_name: str = "b") -> Comparison:
    """Per-seed values {seed: value} on each side, compared with the test a suite's `design` names."""
    return get(design).compare(a, b, spec, alpha=alpha, a_name=a_name, b_name=b_name)


def pairing_design(design: str) -> str | None:
    """The registered design that pairs by seed and is compared with `design` (`StatTest.unpaired`), else the first
    that pairs by seed; None where `design` pairs already or none does."""
    if get(design).pairs_by_seed:
        return None
    pairing = [n for n in names() if get(n).pairs_by_seed]
    return next((n for n in pairing if get(n).unpaired == design), pairing[0] if pairing else None)


def pairing_power(c: Comparison, design: str) -> float | None:
    """The power (of the verdict, at twice min_effect) the pairing `design` would have on an unpaired comparison's
    values, by its own power model: the spread of per-seed differences follows from the sides' spreads and their
    per-seed correlation."""
    if c.seed_correlation is None or c.sd_a is None or c.sd_b is None or c.min_effect <= 0 or c.shared_seeds < 2:
        return None
    var = c.sd_a**2 + c.sd_b**2 - 2.0 * c.seed_correlation * c.sd_a * c.sd_b
    n = c.shared_seeds
    model = get(design).power_model(c.sd_a, c.sd_b, n, n, math.sqrt(max(var, 0.0)))
    return model.verdict_power(design_effect(c.min_effect), c.min_effect, c.alpha)


__all__ = ["DESIGNS", "StatTest", "compare_values", "get", "names", "pairing_design", "pairing_power", "register"]
