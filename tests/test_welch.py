"""welch(): against scipy, hand-worked cases, the verdict rules at their edges, calibration by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from normreg.judge.stats import welch
from normreg.suite.spec import MetricSpec

ACC = MetricSpec("acc", "max", 0.01)
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
    assert welch(a, b, MetricSpec("m", "max", 0.4999)).verdict == "regressed"


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


# Calibration by simulation (A/A false alarms, equivalence under a real difference) is in test_stats.py,
# on the vectorised verdicts that test_array_verdicts_agree_with_welch ties to welch().
