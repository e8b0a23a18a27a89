"""stats.py against scipy, hand-worked cases and simulation (fixed random seeds, vectorised)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from normreg.judge.designs import compare_values, get
from normreg.judge.designs.paired import PairedPower, paired
from normreg.judge.designs.welch import WelchPower, welch
from normreg.judge.sequential import simulate
from normreg.judge.stats import (
    VERDICT_CODES,
    adjust,
    array_p,
    array_verdicts,
    satterthwaite_df,
    welch_se_df,
)
from normreg.suite.model import MetricSpec

ACC = MetricSpec("acc", "max", 0.01)
WELCH = get("welch")
ZERO = MetricSpec("m", "max", 0.0)


def test_paired_matches_scipy_and_pairs_by_seed():
    rng = np.random.default_rng(1)
    a = {s: float(x) for s, x in enumerate(rng.normal(0, 1, 6))}
    b = {s: a[s] + float(rng.normal(0.3, 0.2)) for s in a}
    b[99] = 5.0  # no partner: left out
    c = paired(a, b, ZERO)
    ref = st.ttest_rel([b[s] for s in range(6)], [a[s] for s in range(6)])
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (c.n_a, c.n_b, c.df, c.design) == (6, 6, 5.0, "paired")


def test_paired_without_shared_seeds_is_inconclusive_with_reason():
    c = paired({0: 1.0, 1: 2.0}, {5: 1.0, 6: 2.0}, ACC)
    assert c.verdict == "inconclusive"
    assert "only 0 seed(s) in common" in c.reason


def test_pairing_gains_power_when_seeds_share_noise():
    rng = np.random.default_rng(2)
    shared = rng.normal(0, 0.02, 8)
    a = {s: 0.9 + shared[s] + rng.normal(0, 0.002) for s in range(8)}
    b = {s: 0.9 + shared[s] + rng.normal(0, 0.002) for s in range(8)}
    c = compare_values(a, b, ACC, design="paired")
    assert c.power is not None and c.power_unpaired is not None
    assert c.power > 0.9 > 0.5 > c.power_unpaired
    assert c.verdict == "equivalent"


def test_paired_power_matches_noncentral_t():
    se, df = 0.5 / np.sqrt(6), 5.0
    crit = st.t.isf(0.025, df)
    exact = st.nct.sf(crit, df, 0.4 / se) + st.nct.cdf(-crit, df, 0.4 / se)
    assert PairedPower(1, 1, 6, 6, 0.5).power(0.4, 0.05) == pytest.approx(exact, abs=0.002)
    assert PairedPower(1, 1, 6, 6, 0.5).power(0.0, 0.05) == pytest.approx(0.05, abs=0.002)


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("effect", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("sds", [(1.0, 1.0), (0.3, 1.0)])
def test_power_agrees_with_simulation(n, effect, sds):
    rng = np.random.default_rng(n * 100 + int(effect * 10))
    a = rng.normal(0, sds[0], (4000, n))
    b = rng.normal(effect, sds[1], (4000, n))
    diff, se, df = WELCH.array_stats(a, b)
    p, _ = array_p(diff, se, df, 0.0)
    simulated = float(np.mean(p < 0.05))
    assert WelchPower(sds[0], sds[1], n, n).power(effect, 0.05) == pytest.approx(simulated, abs=0.05)


@pytest.mark.parametrize("n", [4, 8, 16])
def test_tost_power_agrees_with_simulation(n):
    rng = np.random.default_rng(n)
    a, b = rng.normal(0, 1, (4000, n)), rng.normal(0.2, 1, (4000, n))
    diff, se, df = WELCH.array_stats(a, b)
    _, p_eq = array_p(diff, se, df, 1.0)
    assert WelchPower(1, 1, n, n).tost_power(0.2, 1.0, 0.05) == pytest.approx(float(np.mean(p_eq < 0.05)), abs=0.05)


def test_seeds_for_reaches_the_power_it_promises():
    """`plan`'s answer checked by simulation: at the seeds it names, power is at least the target."""
    n = WELCH.seeds_for(0.02, 0.01, 0.015, 0.05, 0.8)
    assert n is not None
    rng = np.random.default_rng(3)
    for size, want in ((n, lambda x: x >= 0.8 - 0.03), (n - 1, lambda x: x < 0.8 + 0.03)):
        a, b = rng.normal(0, 0.01, (4000, size)), rng.normal(0.02, 0.015, (4000, size))
        p, _ = array_p(*WELCH.array_stats(a, b), 0.0)
        assert want(float(np.mean(p < 0.05)))


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("design", ["welch", "paired"])
def test_aa_false_alarm_rate_is_alpha(n, design):
    rng = np.random.default_rng(n)
    a, b = rng.normal(0, 1, (20000, n)), rng.normal(0, 1, (20000, n))
    codes, _ = simulate(a, b, ZERO, design=design)
    assert abs(float(np.mean(codes < 2)) - 0.05) <= 0.02


def test_equivalent_is_rare_when_the_true_difference_exceeds_min_effect():
    rng = np.random.default_rng(4)
    for n in (3, 5, 10, 20):
        a, b = rng.normal(0, 1, (10000, n)), rng.normal(1.05, 1, (10000, n))
        codes, _ = simulate(a, b, MetricSpec("m", "max", 1.0))
        assert float(np.mean(codes == 2)) <= 0.05


def test_array_verdicts_agree_with_welch():
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, (120, 4)), rng.normal(0.8, 1.5, (120, 4))
    spec = MetricSpec("m", "min", 0.5)
    diff, se, df = WELCH.array_stats(a, b)
    p, p_eq = array_p(diff, se, df, spec.min_effect)
    codes = array_verdicts(diff, p, p_eq, spec.min_effect, spec.goal, 0.05, 0.05)
    scalar = [welch(x, y, spec).verdict for x, y in zip(a, b)]
    assert [VERDICT_CODES[c] for c in codes] == scalar
    assert {"regressed", "inconclusive"} <= set(scalar)


def test_holm_and_bonferroni_by_hand():
    def fake(p):
        return welch([0, 1, 2], [0, 1, 2 + p], ZERO)  # any tested comparison; p set below

    from dataclasses import replace

    cs = [replace(fake(0), p_value=p) for p in (0.01, 0.04, 0.03)]
    holm = [c.p_adjusted for c in adjust(cs, "holm")]
    assert holm == pytest.approx([0.03, 0.06, 0.06])
    assert [c.p_adjusted for c in adjust(cs, "bonferroni")] == pytest.approx([0.03, 0.12, 0.09])
    assert [c.p_adjusted for c in adjust(cs, "none")] == pytest.approx([0.01, 0.04, 0.03])


def test_holm_turns_a_lone_false_alarm_inconclusive():
    a = [0.90, 0.93, 0.91, 0.95]
    b = [0.96, 0.97, 0.94, 0.99]
    lone = welch(a, b, ZERO)
    assert lone.verdict == "improved" and 0.005 < lone.p_value < 0.05
    family = adjust([lone] + [welch(a, a[::-1], ZERO)] * 9, "holm")  # same values, other seeds: a test
    assert family[0].verdict == "inconclusive" and family[0].p_adjusted == pytest.approx(lone.p_value * 10)
    assert "adjusted p" in family[0].reason


def test_inconclusive_says_how_many_seeds_would_decide():
    c = welch([0.98, 0.985, 0.99], [0.95, 0.99, 0.93], ACC)
    assert c.verdict == "inconclusive"
    assert c.seeds_needed is not None and c.seeds_needed > 3 and c.seeds_needed_for == "regressed"
    assert f"about {c.seeds_needed} seeds per side" in c.reason
    eq = welch([0.98, 0.96, 0.99], [0.97, 0.99, 0.965], MetricSpec("acc", "max", 0.02))
    assert eq.verdict == "inconclusive" and eq.seeds_needed_for == "equivalent"


def test_mde_has_eighty_percent_power():
    """The MDE is where the verdict (its interval beyond min_effect) reaches 80%, not the plain test."""
    c = welch([1.0, 1.2, 0.9, 1.1, 1.05], [1.1, 1.0, 0.95, 1.2, 1.0], ACC)
    d = WelchPower(c.sd_a, c.sd_b, 5, 5)
    assert d.verdict_power(c.mde, ACC.min_effect, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert d.power(c.mde, 0.05) > 0.8 + 0.02


LOSS = MetricSpec("loss", "min", 0.05)


SAMPLES = [
    ([0.98, 0.985, 0.99, 0.981, 0.984], [0.93, 0.95, 0.92, 0.94, 0.945]),
    ([1.0, 2.0, 3.0], [1.5, 2.5, 3.5, 4.5, 10.0]),
    ([0.5, 0.5, 0.6], [0.5, 0.52]),
    (list(np.random.default_rng(1).normal(0, 1, 20)), list(np.random.default_rng(2).normal(0.3, 3, 7))),
]


@pytest.mark.parametrize("a,b", SAMPLES, ids=["flagship-like", "unequal-n", "tiny", "random"])
def test_welch_matches_scipy(a: list[float], b: list[float]) -> None:
    c = welch(a, b, ACC, alpha=0.05)
    ref = st.ttest_ind(b, a, equal_var=False)
    assert c.t == pytest.approx(ref.statistic, rel=1e-12)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert c.df == pytest.approx(ref.df, rel=1e-12)
    ci = ref.confidence_interval(c.ci_level)  # the interval the verdict used, at the level it says
    assert (c.ci_low, c.ci_high) == (pytest.approx(ci.low, rel=1e-9), pytest.approx(ci.high, rel=1e-9))
    assert c.mean_a == pytest.approx(np.mean(a)) and c.sd_b == pytest.approx(np.std(b, ddof=1))
    assert c.diff == pytest.approx(np.mean(b) - np.mean(a))


def test_ci_level_follows_alpha() -> None:
    a, b = SAMPLES[0]
    c = welch(a, b, ACC, alpha=0.01)
    assert c.verdict == "regressed"
    ci = st.ttest_ind(b, a, equal_var=False).confidence_interval(0.99)
    assert c.ci_level == 0.99 and c.ci_low == pytest.approx(ci.low) and c.ci_high == pytest.approx(ci.high)


def test_tost_hand_worked() -> None:
    # a: mean 1.0, sd 0.1; b: mean 1.01, sd 0.1; n=10 each -> se = sqrt(0.002), df = 18, delta = 0.1
    a = [1.0 + 0.1 * x for x in (-1.5, -1, -0.5, 0, 0, 0, 0, 0.5, 1, 1.5)]
    sd = float(np.std(a, ddof=1))
    a = [1.0 + (x - 1.0) * 0.1 / sd for x in a]  # rescale to sd exactly 0.1
    b = [x + 0.01 for x in a]
    c = welch(a, b, MetricSpec("m", "max", 0.1))
    se = math.sqrt(2 * 0.01 / 10)
    p_low = st.t.sf((0.01 + 0.1) / se, 18)
    p_high = st.t.cdf((0.01 - 0.1) / se, 18)
    assert c.df == pytest.approx(18)
    assert c.p_equivalence == pytest.approx(max(p_low, p_high))
    assert c.verdict == "equivalent"


def test_verdicts_follow_goal_direction() -> None:
    a, b = SAMPLES[0]
    assert welch(a, b, ACC).verdict == "regressed"
    assert welch(b, a, ACC).verdict == "improved"
    loss_a, loss_b = [0.30, 0.31, 0.29, 0.30], [0.50, 0.52, 0.49, 0.51]
    assert welch(loss_a, loss_b, LOSS).verdict == "regressed"  # higher loss is worse
    assert welch(loss_b, loss_a, LOSS).verdict == "improved"


def test_significant_but_smaller_than_min_effect_is_not_a_regression() -> None:
    a = [0.900, 0.901, 0.899, 0.900, 0.900]
    b = [0.895, 0.896, 0.894, 0.895, 0.895]  # 0.005 worse, very significant, min_effect 0.01
    c = welch(a, b, ACC)
    assert c.p_value < 1e-4 and c.verdict != "regressed"
    assert c.verdict == "equivalent"  # and TOST shows it lies within ±0.01
    c2 = welch(a, b, MetricSpec("acc", "max", 0.0051))
    assert c2.verdict in ("equivalent", "inconclusive") and c2.verdict != "regressed"


def test_min_effect_boundary_is_strict() -> None:
    a = [1.0, 1.1, 0.9, 1.0, 1.0, 1.05, 0.95]
    b = [x - 0.5 for x in a]  # exactly 0.5 worse
    assert welch(a, b, MetricSpec("m", "max", 0.5)).verdict == "inconclusive"
    # an observed difference just past min_effect is not one shown beyond it: the interval must clear it
    short = welch(a, b, MetricSpec("m", "max", 0.4999))
    assert short.verdict == "inconclusive" and short.short_of_margin == "worse"
    assert short.ci_high > -0.4999 and short.ci_low < -0.4999
    c = welch(a, b, MetricSpec("m", "max", 0.4))
    assert c.verdict == "regressed" and c.ci_high < -0.4


def test_zero_min_effect_cannot_show_equivalence() -> None:
    c = welch([1.0, 1.1, 0.9], [1.1, 0.9, 1.0], MetricSpec("m", "max", 0.0))
    assert c.p_equivalence is None and c.verdict == "inconclusive" and "cannot be shown" in c.reason


@pytest.mark.parametrize("a,b,fragment", [
    ([0.9], [0.8, 0.81], "fewer than two values on a (n=1)"),
    ([], [], "fewer than two values on a (n=0) and b (n=0)"),
])
def test_not_enough_data_is_a_stated_verdict(a: list[float], b: list[float], fragment: str) -> None:
    c = welch(a, b, ACC)
    assert c.verdict == "inconclusive" and fragment in c.reason
    assert c.p_value is None and c.t is None


def test_zero_variance_on_one_side_is_fine() -> None:
    c = welch([0.9, 0.9, 0.9], [0.8, 0.82, 0.79], ACC)
    assert c.p_value is not None and c.verdict == "regressed"


@pytest.mark.parametrize("seed", range(5))
def test_satterthwaite_df_is_scipys_welch_df(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 1, 3 + seed), rng.normal(0, 4, 9 - seed)
    want = st.ttest_ind(a, b, equal_var=False).df
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    assert satterthwaite_df([va, vb], [len(a) - 1, len(b) - 1]) == pytest.approx(want, rel=1e-12)
    assert welch_se_df(a.std(ddof=1), b.std(ddof=1), len(a), len(b))[1] == pytest.approx(want, rel=1e-12)
    # element-wise over many samples, as the simulations use it
    many_a, many_b = rng.normal(0, 1, (20, len(a))), rng.normal(0, 4, (20, len(b)))
    got = satterthwaite_df([many_a.var(-1, ddof=1) / len(a), many_b.var(-1, ddof=1) / len(b)],
                           [len(a) - 1, len(b) - 1])
    np.testing.assert_allclose(got, st.ttest_ind(many_a, many_b, axis=-1, equal_var=False).df, rtol=1e-12)


def test_satterthwaite_df_by_hand() -> None:
    assert satterthwaite_df([1.0, 1.0], [4, 4]) == 8.0  # two equal estimates on 4 df each pool to 8
    assert satterthwaite_df([2.0], [5]) == 5.0  # one estimate keeps its own
    assert satterthwaite_df([3.0, 1e-9], [2, 100]) == pytest.approx(2.0)  # a negligible part adds nothing
    assert welch_se_df(0.0, 0.0, 3, 4) == (0.0, 5.0)  # no spread at all: the pooled df
