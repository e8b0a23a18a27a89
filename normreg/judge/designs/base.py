"""The interface every statistical test (a suite's `design`) implements, and the registry that names them.

A test turns two sides of per-seed values into a `Comparison` with the same verdict rules as every other test
(`stats._decide`: a difference needs p < alpha and the observed difference beyond `min_effect`; equivalence
needs the equivalence p-value below alpha), gives the same decisions for many simulated samples at once (for
`calibrate`, staged seeding and the tests), and says how many seeds reach a verdict with a given probability
(for `plan`). Adding a test is adding one file to this package that defines a `StatTest` subclass decorated
with `@register("name")` (`DESIGNS`, a `normreg.registry.Registry`): the suite schema, `compare`, `plan`,
`calibrate` and the CLI help take their choices from `names()`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from normreg.judge.stats import Comparison, array_p, array_stats, seeds_for
from normreg.registry import Registry
from normreg.suite.spec import MetricSpec


class StatTest(ABC):
    """One statistical test. Subclasses set `name` and `summary` and implement `compare` and `array_test`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the CLI help and the README
    # Staged seeding: "welch" or "paired" when the test's p-values come from t statistics, whose boundaries are
    # lowered by a simulated factor (`sequential.t_correction`); None when its p-values hold against the nominal
    # levels as they are (checked by simulation in the tests).
    staged_calibration: ClassVar[str | None] = "welch"
    # Simulated staged checks behind a staged row's power and MDE (`sequential.staged_power`): 2,000 (standard
    # error at most 0.011) for a t-test; fewer for a test whose array form is slow (it is run some 100 times).
    staged_power_reps: ClassVar[int] = 2000

    @abstractmethod
    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        """Per-seed values {seed: value} of the reference `a` and the candidate `b`, compared on one metric."""

    @abstractmethod
    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(diff, two-sided p, equivalence p within ±delta) for many samples at once: replicates along the first
        axis, seeds along the last. The equivalence p is 1 where delta is 0."""

    def seeds_for(self, effect: float, sd_a: float, sd_b: float, alpha: float, target: float, *,
                  sd_diff: float | None = None, goal: str = "difference", delta: float = 0.0,
                  limit: int = 1000, pilot: tuple[np.ndarray, np.ndarray] | None = None, start: int = 2) -> int | None:
        """Seeds per side for probability `target` of the verdict (see `stats.seeds_for`), at least `start`; t-based
        by default. `pilot`: the pilot's values on each side, for tests whose power is found by simulating them."""
        return seeds_for(effect, sd_a, sd_b, alpha, target, design="paired" if sd_diff is not None else "welch",
                         sd_diff=sd_diff, goal=goal, delta=delta, limit=limit, start=start)

    def smallest_p(self, n_a: int, n_b: int, *, two_sided: bool = True) -> float:
        """The smallest p-value the test can give with `n_a` and `n_b` seeds, whatever the values: 0 for a test on
        a continuous statistic (a t-test); a permutation test cannot go below one split in all of them."""
        return 0.0


class TTest(StatTest):
    """A t-test (welch, paired): its array form is `stats.array_stats` under the design of the same name."""

    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        diff, se, df = array_stats(a, b, self.name)
        return (diff, *array_p(diff, se, df, delta))


def _is_test(name: str, part: type[StatTest]) -> None:
    if not (isinstance(part, type) and issubclass(part, StatTest)):
        raise TypeError(f"expected a StatTest subclass for the design {name!r}, got {part!r}")


DESIGNS: Registry[type[StatTest]] = Registry("design", package="normreg.judge.designs", check=_is_test)


def register(name: str) -> Callable[[type[StatTest]], type[StatTest]]:
    """Class decorator: make the test available as the design `name` (its `name` attribute says the same)."""
    return DESIGNS.register(name)


def get(name: str) -> StatTest:
    """The test registered as `name`, or an `InputError` with a did-you-mean and the choices."""
    return DESIGNS.get(name)()
