"""Group-sequential boundaries against published values, and the issue's targets by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from normreg.judge.sequential import boundaries, repeated_p, sequential_compare, simulate
from normreg.judge.stats import VERDICT_CODES
from normreg.suite.spec import MetricSpec, stage_sizes

STAGES = stage_sizes(3, 20)


def test_stage_sizes():
    assert STAGES == (3, 5, 8, 12, 18, 20)
    assert stage_sizes(5, 5) == (5,)
    assert stage_sizes(3, 4) == (3, 4)


def test_boundaries_match_published_lan_demets_values():
    # gsDesign: sfLDPocock, two-sided alpha 0.05 and sfLDOF, one-sided 0.025, five equally spaced looks.
    info = [0.2, 0.4, 0.6, 0.8, 1.0]
    assert boundaries(info, 0.05, "pocock") == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=2e-3)
    assert boundaries(info, 0.025, "obrien-fleming", two_sided=False) == pytest.approx(
        [4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    assert boundaries([1.0], 0.05) == pytest.approx([1.95996], abs=1e-4)


def test_repeated_p_is_the_level_at_which_a_look_crosses():
    info = [0.25, 0.5, 1.0]
    p = repeated_p([0.3, 0.02, 0.01], info)
    assert boundaries(info, p) is not None
    from normreg.judge.sequential import nominal_levels

    lv = nominal_levels(info, p * 1.01)
    assert 0.01 <= lv[2] * 1.02 and any(x <= y for x, y in zip([0.3, 0.02, 0.01], lv))
    assert repeated_p([0.04], [1.0]) == 0.04


@pytest.mark.parametrize("design", ["welch", "paired"])
@pytest.mark.parametrize("spending", ["pocock", "obrien-fleming"])
def test_sequential_aa_false_alarm_rate_is_alpha(design, spending):
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, (4000, 20)), rng.normal(0, 1, (4000, 20))
    codes, used = simulate(a, b, MetricSpec("m", "max", 0.0), design=design, stages=STAGES, spending=spending)
    assert abs(float(np.mean(codes < 2)) - 0.05) <= 0.02


def test_flagship_gap_decided_with_at_most_sixty_percent_of_the_runs():
    """Twin tower vs merged batch: means 0.984 vs 0.937, spreads 0.005 vs 0.018."""
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.984, 0.005, (4000, 20)), rng.normal(0.937, 0.018, (4000, 20))
    codes, used = simulate(a, b, MetricSpec("acc", "max", 0.01), stages=STAGES)
    assert float(np.mean(codes == 0)) >= 0.95
    assert float(np.mean(used)) <= 0.6 * 10


def test_sequential_equivalent_is_rare_when_the_true_difference_exceeds_min_effect():
    rng = np.random.default_rng(9)
    a, b = rng.normal(0, 1, (4000, 20)), rng.normal(1.02, 1, (4000, 20))
    codes, _ = simulate(a, b, MetricSpec("m", "max", 1.0), stages=STAGES)
    assert float(np.mean(codes == 2)) <= 0.05


def test_sequential_compare_agrees_with_the_simulation():
    rng = np.random.default_rng(10)
    spec = MetricSpec("acc", "max", 0.01)
    a, b = rng.normal(0.95, 0.01, (12, 20)), rng.normal(0.945, 0.012, (12, 20))
    codes, used = simulate(a, b, spec, stages=STAGES)
    for i in range(len(a)):
        looks = [s for s in STAGES if s <= used[i]]
        c = sequential_compare([dict(enumerate(a[i, :n])) for n in looks], [dict(enumerate(b[i, :n])) for n in looks],
                               spec, n_max=(20, 20), final=looks[-1] == 20)
        assert c.verdict == VERDICT_CODES[codes[i]], i
        assert c.stages == tuple(looks)


@pytest.mark.parametrize("spending", ["pocock", "obrien-fleming"])
@pytest.mark.parametrize("ratio, design", [(1, "welch"), (3, "welch"), (10, "welch"), (1, "paired")])
def test_staged_false_alarms_stay_at_alpha_with_few_seeds_and_unequal_spreads(ratio, design, spending):
    """Stages 3..20: t statistics with 2 degrees of freedom at the first look, spreads up to 10 times apart.
    32,000 replicates: standard error 0.0012, a quarter of the 0.005 allowed above alpha."""
    rng = np.random.default_rng([ratio, len(design), len(spending)])
    a, b = rng.normal(0, 1, (32000, 20)), rng.normal(0, ratio, (32000, 20))
    codes, _ = simulate(a, b, MetricSpec("m", "max", 0.0), design=design, stages=STAGES, spending=spending)
    assert float(np.mean(codes < 2)) <= 0.05 + 0.005


def test_the_t_correction_lowers_the_level_only_where_t_needs_it():
    from normreg.judge.sequential import t_correction

    assert t_correction((20,), (20,), "welch", "pocock", 0.05) == 1.0  # one look: the t-test is exact
    r = t_correction(STAGES, STAGES, "paired", "pocock", 0.05)
    assert 0.7 < r < 1.0
