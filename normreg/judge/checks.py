"""Judging a suite's runs: pair checks (each variant against the reference) and baseline checks, corrected for
multiple comparisons, plus the problems of failed runs. Fixed seeds use `judge`; seeds run in stages `judge_staged`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from scipy import special as _sp

from normreg.choices import SIGNIFICANT
from normreg.environment import differences
from normreg.execution.results import RunResult
from normreg.fileio import clean_json
from normreg.judge.baseline import Baseline
from normreg.judge.designs import compare_values
from normreg.judge.designs import get as get_design
from normreg.judge.sequential import final_levels, sequential_compare
from normreg.judge.stats import Comparison, adjust, as_record, welch_se_df
from normreg.suite.model import MetricSpec, Suite


def satisfies(verdict: str, expected: str) -> bool:
    """Whether a verdict meets an expectation: `identical` passes wherever `equivalent` does."""
    return verdict == expected or (verdict == "identical" and expected == "equivalent")


@dataclass(frozen=True)
class Check:
    """One comparison in context: which suite, pair or baseline, what was expected, whether it fails the run."""

    suite: str
    kind: str  # "pair" | "baseline"
    comparison: Comparison
    expected: str | None = None  # the verdict the suite declares with `expect`, if any
    environment_differences: Mapping[str, list[Any]] = field(default_factory=dict)
    suite_changes: tuple[str, ...] = ()  # a baseline check: how the suite changed since the baseline was made

    @property
    def failed(self) -> bool:
        verdict = self.comparison.verdict
        if self.expected is not None:
            return not satisfies(verdict, self.expected)
        if self.kind == "baseline":
            return verdict == "regressed"
        return verdict in SIGNIFICANT

    @property
    def expected_failure(self) -> bool:
        """A known bug, caught as declared: reported, but it does not fail the run."""
        return self.expected is not None and self.expected == self.comparison.verdict and \
            self.expected in SIGNIFICANT

    def __getattr__(self, name: str) -> Any:
        # Flat, as the report's JSON and `checks_frame()` show a check: `check.a`, `check.diff`, `check.verdict`
        # read the comparison's fields (`check.comparison.a` is the same value). Only for names not found on the
        # check itself, and never for private names (copy and pickle probe those before the fields are set).
        if name in _COMPARISON_FIELDS:
            return getattr(self.comparison, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_COMPARISON_FIELDS})

    def to_json(self) -> dict[str, Any]:
        c = as_record(self.comparison)
        return {**{k: clean_json(v) for k, v in c.items()}, "suite": self.suite, "kind": self.kind,
                "expected": self.expected, "expected_failure": self.expected_failure, "failed": self.failed,
                "environment_differences": dict(self.environment_differences),
                "suite_changes": list(self.suite_changes)}


_COMPARISON_FIELDS = frozenset(f.name for f in fields(Comparison)) - {"retest"}  # as reports store them


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


def _values(suite: Suite, runs: Sequence[RunResult]) -> dict[str, dict[str, dict[int, float]]]:
    """variant -> metric -> seed -> value, over the successful runs."""
    ok: dict[str, dict[str, dict[int, float]]] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        if r.ok:
            for m in suite.metrics:
                ok.setdefault(r.variant, {}).setdefault(m.name, {})[r.seed] = r.metrics[m.name]
    return ok


Key = tuple[str, str, str]  # (kind, variant, metric) of one check within a suite
Compare = Callable[[str, str, MetricSpec, Mapping[int, float], str], Comparison]  # kind, variant, metric, a, a name


def _each_check(suite: Suite, ok: Mapping[str, Mapping[str, Mapping[int, float]]], baseline: Baseline | None,
                environment: dict, ignore_expect: bool, compare: Compare) -> tuple[list[Check], list[Key]]:
    """The one loop over variants, metrics and kinds (pair, then baseline) that fixed and staged seeds share;
    `compare` makes each comparison from the reference's (or the baseline's) values."""
    checks: list[Check] = []
    keys: list[Key] = []
    if baseline is not None:  # the same for every baseline check of the suite
        env_diff, suite_changes = differences(baseline.environment, environment), baseline.changes(suite)
    for v in suite.variants:
        if not ignore_expect and suite.expects_failure(v.name):
            continue  # its runs are meant to crash: nothing to compare
        for m in suite.metrics:
            if v.name != suite.reference:
                ref = ok.get(suite.reference, {}).get(m.name, {})
                expected = None if ignore_expect else suite.expected(v.name, m.name)
                checks.append(Check(suite.name, "pair", compare("pair", v.name, m, ref, suite.reference), expected))
                keys.append(("pair", v.name, m.name))
            if baseline is not None and v.name in baseline.values and m.name in baseline.values[v.name]:
                stored = baseline.values[v.name][m.name]
                checks.append(Check(suite.name, "baseline", compare("baseline", v.name, m, stored,
                                                                    f"baseline:{v.name}"), None,
                                    env_diff, suite_changes))
                keys.append(("baseline", v.name, m.name))
    return checks, keys


def judge(suite: Suite, runs: Sequence[RunResult], baseline: Baseline | None, environment: dict,
          ignore_expect: bool = False) -> tuple[list[Check], list[Problem]]:
    """Pair checks (each variant vs the reference) and baseline checks, plus problems from failed runs."""
    ok = _values(suite, runs)
    stats = suite.stats

    def compare(kind: str, v: str, m: MetricSpec, a: Mapping[int, float], a_name: str) -> Comparison:
        return compare_values(a, ok.get(v, {}).get(m.name, {}), m, alpha=stats.alpha, design=stats.design,
                              a_name=a_name, b_name=v)

    checks, _ = _each_check(suite, ok, baseline, environment, ignore_expect, compare)
    return correct(suite, checks), run_problems(suite, runs, ignore_expect)


def run_problems(suite: Suite, runs: Sequence[RunResult], ignore_expect: bool = False) -> list[Problem]:
    """Failed runs, and variants declared `failed` whose runs no longer all fail."""
    problems: list[Problem] = []
    for v in suite.variants:
        mine = [r for r in runs if r.variant == v.name]
        bad = [r for r in mine if not r.ok]
        expect_failed = not ignore_expect and suite.expects_failure(v.name)
        for r in bad:
            problems.append(Problem(suite.name, v.name, "run_failed", str(r.error), expect_failed, seed=r.seed))
        if expect_failed and len(bad) < len(mine):
            problems.append(Problem(suite.name, v.name, "expected_failure_missing",
                                    f"expected every run to fail, but {len(mine) - len(bad)} of {len(mine)} "
                                    "succeeded: the known bug is no longer reproduced"))
    return problems


FAMILIES = ("pair", "baseline")


def correct(suite: Suite, checks: Sequence[Check]) -> list[Check]:
    """Apply the suite's multiple-comparison correction within each family, each at the suite's alpha.

    Pair checks (does each variant match the reference?) and baseline checks (has anything changed since the
    baseline?) answer different questions, so they are corrected in separate families: storing a baseline
    never weakens a pair check. Comparisons without a test (identical values, an exact difference) are in
    neither family.
    """
    out = list(checks)
    for family in FAMILIES:
        idx = [i for i, c in enumerate(checks) if c.kind == family]
        adjusted = adjust([checks[i].comparison for i in idx], suite.stats.correction)
        for i, a in zip(idx, adjusted):
            out[i] = replace(checks[i], comparison=a)
    return out


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
    ok = _values(suite, runs)

    def compare(kind: str, v: str, m: MetricSpec, a: Mapping[int, float], a_name: str) -> Comparison:
        mine = tuple(looks.get(v, ()))[: decided.get((kind, v, m.name), len(looks.get(v, ())))] or (0,)
        b = ok.get(v, {}).get(m.name, {})
        grows = kind == "pair"  # the reference grows with the candidate; a stored baseline is fixed
        a_looks = [{s: x for s, x in a.items() if s < n} if grows else dict(a) for n in mine]
        return sequential_compare(a_looks, [{s: x for s, x in b.items() if s < n} for n in mine], m,
                                  n_max=(plan.max if grows else len(a), plan.max), final=mine[-1] >= plan.max,
                                  alpha=stats.alpha, design=stats.design, spending=stats.spending, a_name=a_name,
                                  b_name=v, fixed_reference=not grows)

    checks, keys = _each_check(suite, ok, baseline, environment, ignore_expect, compare)
    problems = run_problems(suite, runs, ignore_expect)
    checks = correct(suite, checks)
    if baseline is not None:
        checks = [_stop_if_undecidable(c, plan.max, stats.design) if k[0] == "baseline" else c
                  for c, k in zip(checks, keys)]
    return checks, problems, keys


def _stop_if_undecidable(check: Check, n_max: int, design: str) -> Check:
    """A baseline check whose verdict more seeds of this run cannot reach, marked so staging stops for it.

    The baseline's side is fixed, so its spread bounds the standard error however many seeds the candidate
    runs. Taking the observed difference and spreads as they are, at the plan's maximum the check would still
    be inconclusive: neither with the interval wholly beyond min_effect, nor with the interval inside
    ±min_effect (projected with Welch's t for every unpaired design). A test whose p-values have a floor (a
    permutation test: one split in all of them) cannot decide at all once that floor, at the plan's maximum, is
    above the last look's levels. (A test that pairs by seed: only seeds the baseline holds can pair, so once they
    all ran, nothing more helps.)
    """
    c = check.comparison
    if c.verdict != "inconclusive" or c.diff is None or c.sd_a is None or c.sd_b is None or c.n_b >= n_max:
        return check
    test = get_design(design)
    if test.pairs_by_seed:
        if c.n_b < c.n_a:
            return check
        why = f"all {c.n_a} seeds the baseline holds are paired; more seeds cannot pair"
    else:
        lv2, lv1 = final_levels(c.n_a, c.stages[0] if c.stages else c.n_b, n_max, c.alpha, design,
                                c.spending or "pocock")
        delta = c.min_effect
        floor2, floor1 = test.smallest_p(c.n_a, n_max), test.smallest_p(c.n_a, n_max, two_sided=False)
        if floor2 > lv2 and (delta <= 0 or floor1 > lv1):
            why = (f"against the baseline's {c.n_a} fixed values the {design} test gives p of at least "
                   f"{floor2:.3g} even at {n_max} seeds, above the level {lv2:.3g} a verdict needs there")
        else:
            se, df = welch_se_df(c.sd_a, c.sd_b, c.n_a, n_max)
            t2, t1 = float(_sp.stdtrit(df, 1 - lv2 / 2)), float(_sp.stdtrit(df, 1 - lv1))
            if abs(c.diff) - delta > t2 * se or (delta > 0 and abs(c.diff) + t1 * se < delta):
                return check
            why = (f"against the baseline's {c.n_a} fixed values even {n_max} seeds would leave it inconclusive "
                   f"(standard error at least {se:.3g})")
    stopped = f"more seeds cannot decide it: {why}"
    reason = c.reason.split("; about ")[0]  # per-side seed advice does not apply with one side fixed
    return replace(check, comparison=replace(c, stopped=stopped, reason=f"{reason}; {stopped}", seeds_needed=None,
                                             seeds_needed_for=None))
