"""The interface every statistical test (a suite's `design`) implements, and the registry that names them.

A test turns two sides of per-seed values into a `Comparison` with the same verdict rules as every other test
(`stats._decide`: a difference needs its interval beyond `min_effect`; equivalence needs the equivalence p-value
below alpha), gives the same decisions for many simulated samples at once (for `calibrate`, staged seeding and the
tests), and says how many seeds reach a verdict with a given probability (for `plan`). Adding a test is adding one
file to this package that defines a `StatTest` subclass decorated with `@register("name")` (`DESIGNS`, a
`normreg.registry.Registry`): the suite schema, `compare`, `plan`, `calibrate` and the CLI help take their choices
from `names()`, and nothing outside this package names a test. Whatever differs between tests is said here, by the test:

- `compare` (abstract): the comparison of two sides' per-seed values, with a `retest` attached (`stats.Retest`:
  the interval and seed advice at another level, after a correction or a staged boundary);
- `array_test` (abstract): (difference, margin p, TOST p) of many simulated samples at once;
- `power_model` (abstract): the `stats.PowerModel` behind `power`, `mde`, `plan`'s seeds and the seed advice;
- `pairs_by_seed`: the test pairs runs by seed (`plan`, `calibrate` and staged seeding then draw and stage
  per-seed differences, and a stored baseline's seeds bound what more seeds can do); `unpaired`: for such a
  test, the unpaired test its power is compared with (`power_unpaired`) and planned with when a pilot pairs
  too few seeds; `label`: its name in sentences;
- `null_looks`: per-look statistics under no difference from normal draws, which calibrate staged seeding's
  boundaries for t statistics (`sequential.t_correction`); None (the default): the nominal levels hold;
- `null_draws`: normal per-seed values behind a staged row's simulated power; `staged_power_reps` how many;
- `smallest_p`: the floor of its p-values with so many seeds (a permutation test's), for when more seeds cannot
  decide a check against a stored baseline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import special as _sp

from normreg.judge.stats import Comparison, PowerModel, _decide, _describe, _power_fields, _test, array_p, seeds_for
from normreg.registry import Registry
from normreg.suite.model import MetricSpec

Look = tuple[np.ndarray, np.ndarray, np.ndarray]  # (difference, standard error, degrees of freedom) per replicate


class StatTest(ABC):
    """One statistical test. Subclasses set `name` and `summary` and implement `compare`, `array_test` and
    `power_model`; the rest has defaults for an unpaired test whose p-values need no staged calibration."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for the CLI help and the README
    label: ClassVar[str] = ""  # the test's name in a sentence ("planned as Welch"); the name when empty
    pairs_by_seed: ClassVar[bool] = False
    unpaired: ClassVar[str | None] = None  # a test that pairs by seed: the unpaired test it is compared with
    # Simulated staged checks behind a staged row's power and MDE (`sequential.staged_power`): 2,000 (standard
    # error at most 0.011) for a t-test; fewer for a test whose array form is slow (it is run some 100 times).
    staged_power_reps: ClassVar[int] = 2000

    @property
    def title(self) -> str:
        return self.label or self.name

    @abstractmethod
    def compare(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, *, alpha: float,
                a_name: str, b_name: str) -> Comparison:
        """Per-seed values {seed: value} of the reference `a` and the candidate `b`, compared on one metric."""

    @abstractmethod
    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(diff, two-sided p, equivalence p within ±delta) for many samples at once: replicates along the first
        axis, seeds along the last. The equivalence p is 1 where delta is 0."""

    @abstractmethod
    def power_model(self, sd_a: float, sd_b: float, n_a: float, n_b: float,
                    sd_diff: float | None = None) -> PowerModel:
        """The t-based power model at these true spreads and seeds per side (`sd_diff`: the spread of per-seed
        differences, for a test that pairs by seed; without it such a test is modelled as its unpaired one)."""

    def seeds_for(self, effect: float, sd_a: float, sd_b: float, alpha: float, target: float = 0.8, *,
                  sd_diff: float | None = None, goal: str = "difference", delta: float = 0.0,
                  limit: int = 1000, pilot: tuple[np.ndarray, np.ndarray] | None = None, start: int = 2) -> int | None:
        """Seeds per side for probability `target` of the verdict (see `stats.seeds_for`), at least `start`, from
        `power_model`. `pilot`: the pilot's values on each side, for tests whose power is found by simulating them."""
        return seeds_for(lambda n: self.power_model(sd_a, sd_b, n, n, sd_diff), effect, alpha, target, goal=goal,
                         delta=delta, limit=limit, start=start)

    def describe(self, a: Mapping[int, float], b: Mapping[int, float], spec: MetricSpec, alpha: float, a_name: str,
                 b_name: str, *, flat_sides_exact: bool = True) -> tuple[dict, Comparison | None]:
        """`compare`'s first step, the same for every test (`stats._describe`): counts, means and spreads as the
        fields of a `Comparison`, and the finished comparison when no test is needed or possible (identical values,
        fewer than two values a side, no seed-to-seed variance: `flat_sides_exact` False leaves that to the test)."""
        return _describe(a, b, spec, alpha, a_name, b_name, self.name, flat_sides_exact=flat_sides_exact)

    def smallest_p(self, n_a: int, n_b: int, *, two_sided: bool = True) -> float:
        """The smallest p-value the test can give with `n_a` and `n_b` seeds, whatever the values: 0 for a test on
        a continuous statistic (a t-test); a permutation test cannot go below one split in all of them."""
        return 0.0

    def null_looks(self, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]] | None:
        """Staged seeding: the test's statistic at each planned look (the first `sizes_a[k]`, `sizes_b[k]` columns)
        of standard normal draws `a`, `b` (replicates, seeds) under no difference, once per spread ratio that
        matters to it; `sequential.t_correction` lowers the boundaries until the worst of them keeps alpha. None
        (the default): the test's p-values hold against the nominal levels as they are (checked by simulation in
        the tests), and nothing is lowered."""
        return None

    def null_draws(self, sd_a: float, sd_b: float, sd_diff: float | None, n_a: int, n_b: int, reps: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Normal per-seed values of the given spreads and no difference, (reps, n) a side, behind a staged row's
        simulated power and MDE: independent sides by default."""
        return sd_a * rng.standard_normal((reps, n_a)), sd_b * rng.standard_normal((reps, n_b))


class TTest(StatTest):
    """A t-test (welch, paired): its array form is `array_stats`, its comparisons carry `TRetest`."""

    @abstractmethod
    def array_stats(self, a: np.ndarray, b: np.ndarray) -> Look:
        """diff, standard error and degrees of freedom for many samples at once (seeds along the last axis)."""

    def array_test(self, a: np.ndarray, b: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        diff, se, df = self.array_stats(a, b)
        return (diff, *array_p(diff, se, df, delta))

    def t_comparison(self, base: dict, se: float, df: float, spec: MetricSpec, alpha: float,
                     model: PowerModel | None, *, sd_diff: float | None = None, **fields: float | None) -> Comparison:
        """The decided comparison of a t statistic: `base` from `describe`, the difference's standard error `se`
        with `df` degrees of freedom, `model` the power model at the observed spreads and counts (None: no power
        and MDE are quoted); `fields`: more of the comparison's fields (`power_unpaired`)."""
        diff = base["diff"]
        power = _power_fields(model, spec.min_effect, alpha) if model is not None else {}
        c = Comparison(**{**base, **_test(diff, se, df, spec.min_effect)}, verdict="", reason="",
                       **power, sd_diff=sd_diff, **fields,  # type: ignore[arg-type]
                       retest=TRetest(self, diff, se, df, base["sd_a"], base["sd_b"], sd_diff))
        return _decide(c)

    @abstractmethod
    def null_looks(self, a: np.ndarray, b: np.ndarray, sizes_a: Sequence[int],
                   sizes_b: Sequence[int]) -> list[list[Look]] | None:
        """A t-test's looks are calibrated (see `StatTest.null_looks`): t statistics at successive looks are less
        correlated than the z statistics the boundaries assume."""


@dataclass(frozen=True, eq=False)
class TRetest:
    """A t-test comparison's values (`stats.Retest`): its interval at any level from the estimate, standard
    error and degrees of freedom, and seed advice from the test's power model at the observed spreads."""

    test: StatTest
    diff: float
    se: float
    df: float
    sd_a: float
    sd_b: float
    sd_diff: float | None = None

    def interval(self, a: float) -> tuple[float, float]:
        half = float(_sp.stdtrit(self.df, 1.0 - a)) * self.se
        return self.diff - half, self.diff + half

    def seeds_for(self, effect: float, alpha: float, goal: str, delta: float, start: int) -> int | None:
        return self.test.seeds_for(effect, self.sd_a, self.sd_b, alpha, sd_diff=self.sd_diff, goal=goal,
                                   delta=delta, start=start)


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
