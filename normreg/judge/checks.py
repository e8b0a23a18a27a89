"""Judging a suite's runs: pair checks (each variant against the reference) and baseline checks, corrected for
multiple comparisons, plus the problems of failed runs. Fixed seeds use `judge`; seeds run in stages `judge_staged`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from normreg.choices import SIGNIFICANT
from normreg.environment import differences
from normreg.fileio import clean_json
from normreg.judge.baseline import Baseline
from normreg.judge.sequential import sequential_compare
from normreg.judge.stats import Comparison, adjust, compare_values
from normreg.run.results import RunResult
from normreg.suite.spec import MetricSpec, Suite


@dataclass(frozen=True)
class Check:
    """One comparison in context: which suite, pair or baseline, what was expected, whether it fails the run."""

    suite: str
    kind: str  # "pair" | "baseline"
    comparison: Comparison
    expected: str | None = None  # the verdict the suite declares with `expect`, if any
    environment_differences: Mapping[str, list[Any]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        verdict = self.comparison.verdict
        if self.expected is not None:
            return verdict != self.expected
        if self.kind == "baseline":
            return verdict == "regressed"
        return verdict in SIGNIFICANT

    @property
    def expected_failure(self) -> bool:
        """A known bug, caught as declared: reported, but it does not fail the run."""
        return self.expected is not None and self.expected == self.comparison.verdict and \
            self.expected in SIGNIFICANT

    def to_json(self) -> dict[str, Any]:
        c = asdict(self.comparison)
        return {**{k: clean_json(v) for k, v in c.items()}, "suite": self.suite, "kind": self.kind,
                "expected": self.expected, "expected_failure": self.expected_failure, "failed": self.failed,
                "ci_level": self.comparison.ci_level,
                "environment_differences": dict(self.environment_differences)}


@dataclass(frozen=True)
class Problem:
    """Something other than a comparison that bears on the outcome: failed runs, an unmet 'failed' expectation."""

    suite: str
    variant: str
    kind: str  # "run_failed" | "expected_failure_missing" | "baseline_not_updated"
    message: str
    expected: bool = False  # a failure the suite declared with `expect: {variant: failed}`
    seed: int | None = None  # the seed of a failed run; None for problems of a whole variant or suite

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def judge(suite: Suite, runs: Sequence[RunResult], baseline: Baseline | None, environment: dict,
          ignore_expect: bool = False) -> tuple[list[Check], list[Problem]]:
    """Pair checks (each variant vs the reference) and baseline checks, plus problems from failed runs."""
    checks: list[Check] = []
    ok: dict[str, dict[str, dict[int, float]]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        if r.ok:
            for m in suite.metrics:
                ok.setdefault(r.variant, {}).setdefault(m.name, {})[r.seed] = r.metrics[m.name]
    alpha, design = suite.stats.alpha, suite.stats.design
    problems = run_problems(suite, runs, ignore_expect)
    for v in suite.variants:
        if not ignore_expect and suite.expected(v.name, "*") == "failed":
            continue  # its runs are meant to crash: nothing to compare
        for m in suite.metrics:
            values = ok.get(v.name, {}).get(m.name, {})
            if v.name != suite.reference:
                ref = ok.get(suite.reference, {}).get(m.name, {})
                expected = None if ignore_expect else suite.expected(v.name, m.name)
                checks.append(Check(suite.name, "pair", compare_values(ref, values, m, alpha=alpha, design=design,
                                                                       a_name=suite.reference, b_name=v.name),
                                    expected))
            if baseline is not None and v.name in baseline.values and m.name in baseline.values[v.name]:
                stored = baseline.values[v.name][m.name]
                env_diff = differences(baseline.environment, environment)
                if baseline.suite_digest and baseline.suite_digest != suite.digest:
                    env_diff["suite_digest"] = [baseline.suite_digest[:12], suite.digest[:12]]
                checks.append(Check(suite.name, "baseline",
                                    compare_values(stored, values, m, alpha=alpha, design=design,
                                                   a_name=f"baseline:{v.name}", b_name=v.name),
                                    None, env_diff))
    return correct(suite, checks), problems


def run_problems(suite: Suite, runs: Sequence[RunResult], ignore_expect: bool = False) -> list[Problem]:
    """Failed runs, and variants declared `failed` whose runs no longer all fail."""
    problems: list[Problem] = []
    for v in suite.variants:
        mine = [r for r in runs if r.variant == v.name]
        bad = [r for r in mine if not r.ok]
        expect_failed = not ignore_expect and suite.expected(v.name, "*") == "failed"
        for r in bad:
            problems.append(Problem(suite.name, v.name, "run_failed", str(r.error), expect_failed, seed=r.seed))
        if expect_failed and len(bad) < len(mine):
            problems.append(Problem(suite.name, v.name, "expected_failure_missing",
                                    f"expected every run to fail, but {len(mine) - len(bad)} of {len(mine)} "
                                    "succeeded: the known bug is no longer reproduced"))
    return problems


def correct(suite: Suite, checks: Sequence[Check]) -> list[Check]:
    """Apply the suite's multiple-comparison correction across all of its checks (pair and baseline)."""
    adjusted = adjust([c.comparison for c in checks], suite.stats.correction)
    return [replace(c, comparison=a) for c, a in zip(checks, adjusted)]


Key = tuple[str, str, str]  # (kind, variant, metric) of one check within a suite


def judge_staged(suite: Suite, runs: Sequence[RunResult], baseline: Baseline | None, environment: dict,
                 looks: Mapping[str, Sequence[int]], decided: Mapping[Key, int],
                 ignore_expect: bool = False) -> tuple[list[Check], list[Problem], list[Key]]:
    """The checks of a suite whose seeds run in stages, after the looks taken so far.

    `looks[variant]` holds the seeds per side after each stage that variant ran; look k uses seeds below that
    count. A check already decided at look j (`decided[key] = j`) is judged on its first j looks only, so a
    verdict, once reached, stands. Returns checks in the order `judge` gives them, problems, and their keys.
    """
    assert suite.seed_plan is not None
    plan, stats = suite.seed_plan, suite.stats
    ok: dict[str, dict[str, dict[int, float]]] = {}
    for r in runs:
        if r.ok:
            for m in suite.metrics:
                ok.setdefault(r.variant, {}).setdefault(m.name, {})[r.seed] = r.metrics[m.name]
    problems = run_problems(suite, runs, ignore_expect)
    checks: list[Check] = []
    keys: list[Key] = []

    def staged(kind: str, v: str, m: MetricSpec, a_values: Callable[[int], Mapping[int, float]],
               a_max: int, a_name: str) -> Comparison:
        mine = tuple(looks.get(v, ()))[: decided.get((kind, v, m.name), len(looks.get(v, ())))]
        mine = mine or (0,)
        b = ok.get(v, {}).get(m.name, {})
        return sequential_compare([a_values(n) for n in mine], [{s: x for s, x in b.items() if s < n} for n in mine],
                                  m, n_max=(a_max, plan.max), final=mine[-1] >= plan.max, alpha=stats.alpha,
                                  design=stats.design, spending=stats.spending, a_name=a_name, b_name=v)

    for v in suite.variants:
        if not ignore_expect and suite.expected(v.name, "*") == "failed":
            continue
        for m in suite.metrics:
            if v.name != suite.reference:
                ref = ok.get(suite.reference, {}).get(m.name, {})
                c = staged("pair", v.name, m, lambda n, ref=ref: {s: x for s, x in ref.items() if s < n},
                           plan.max, suite.reference)
                checks.append(Check(suite.name, "pair", c, None if ignore_expect else suite.expected(v.name, m.name)))
                keys.append(("pair", v.name, m.name))
            if baseline is not None and v.name in baseline.values and m.name in baseline.values[v.name]:
                stored = dict(baseline.values[v.name][m.name])
                env_diff = differences(baseline.environment, environment)
                if baseline.suite_digest and baseline.suite_digest != suite.digest:
                    env_diff["suite_digest"] = [baseline.suite_digest[:12], suite.digest[:12]]
                c = staged("baseline", v.name, m, lambda n, stored=stored: stored, len(stored),
                           f"baseline:{v.name}")
                checks.append(Check(suite.name, "baseline", c, None, env_diff))
                keys.append(("baseline", v.name, m.name))
    return correct(suite, checks), problems, keys
