"""Shared seeds (issue 18.6): each comparison's per-seed correlation of its sides, checked against scipy, and the
notes that say when an unpaired test loses power to pairing or loses its false-alarm rate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as st

from normreg.judge.checks import Check
from normreg.judge.designs import get, pairing_power
from normreg.judge.designs.paired import PairedPower, paired
from normreg.judge.designs.welch import welch_values
from normreg.judge.stats import (
    array_p,
    array_verdicts,
    clear_correlation,
    correlation_p,
    seed_correlation,
)
from normreg.render.labels import pairing_note
from normreg.render.terminal import render_table
from normreg.suite.model import MetricSpec

ACC = MetricSpec("acc", "max", 0.01)


def _sides(rho: float, n: int = 8, seed: int = 41, sd: float = 0.02) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    z1, z2 = rng.standard_normal((2, n))
    a = 0.9 + sd * z1
    b = 0.9 + sd * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    return dict(enumerate(map(float, a))), dict(enumerate(map(float, b)))


@pytest.mark.parametrize("rho", [0.9, 0.0, -0.7], ids=["positive", "none", "negative"])
def test_seed_correlation_and_its_p_value_are_scipys(rho):
    a, b = _sides(rho)
    ref = st.pearsonr(list(a.values()), list(b.values()))
    assert seed_correlation(a, b) == pytest.approx(ref.statistic, abs=1e-12)
    p_pos, p_neg = correlation_p(ref.statistic, len(a))
    assert min(1.0, 2 * min(p_pos, p_neg)) == pytest.approx(ref.pvalue, rel=1e-9)
    assert clear_correlation(ref.statistic, len(a))[1] == pytest.approx(ref.pvalue, rel=1e-9)


def test_seed_correlation_uses_shared_seeds_only_and_needs_three():
    a = {0: 0.90, 1: 0.92, 2: 0.91, 7: 0.5}
    b = {0: 0.80, 1: 0.82, 2: 0.815, 9: 0.1}
    assert seed_correlation(a, b) == pytest.approx(st.pearsonr([0.90, 0.92, 0.91], [0.80, 0.82, 0.815]).statistic)
    assert seed_correlation({0: 0.9, 1: 0.8}, {0: 0.9, 1: 0.7}) is None
    assert seed_correlation({0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.1, 1: 0.2, 2: 0.3}) is None  # no spread on a side


def test_every_comparison_carries_its_correlation_into_json_and_the_table():
    a, b = _sides(0.9)
    c = welch_values(a, b, ACC, a_name="ref", b_name="new")
    assert c.seed_correlation == pytest.approx(seed_correlation(a, b)) and c.shared_seeds == 8
    record = Check("s", "pair", c).to_json()
    assert json.loads(json.dumps(record))["seed_correlation"] == pytest.approx(c.seed_correlation)
    assert record["shared_seeds"] == 8
    table = render_table([Check("s", "pair", c)])
    assert "seed r" in table.splitlines()[0] and f"{c.seed_correlation:+.2f}" in table


def test_paired_power_is_the_paired_designs_at_the_implied_spread_of_differences():
    a, b = _sides(0.8)
    c = welch_values(a, b, ACC)
    d = [b[s] - a[s] for s in a]
    p = paired(a, b, ACC)
    expected = PairedPower(c.sd_a, c.sd_b, 8, 8, float(np.std(d, ddof=1))).verdict_power(0.02, 0.01, 0.05)
    assert pairing_power(c, "paired") == pytest.approx(expected, rel=1e-6)
    assert p.power == pytest.approx(expected, rel=1e-6)


def test_notes_say_when_pairing_gains_power_or_welchs_rate_fails():
    pos = welch_values(*_sides(0.95), ACC)
    note = pairing_note(pos)
    assert note is not None and "design: paired would be more powerful here" in note
    neg = welch_values(*_sides(-0.9), ACC)
    note = pairing_note(neg)
    assert note is not None and "false-alarm rate is above alpha" in note
    assert pairing_note(welch_values(*_sides(0.0, seed=44), ACC)) is None
    assert pairing_note(paired(*_sides(0.95), ACC)) is None  # the paired design already pairs


def test_the_notes_premise_by_simulation():
    """The test's own level (min_effect 0, so no margin enters): at a per-seed correlation of -0.5 Welch's false
    alarms exceed alpha (0.05) and the paired test's do not; at +0.8 the paired test is the more powerful
    (5 seeds, spread 0.02, true difference 0.02; 100,000 pairs)."""
    rng = np.random.default_rng(45)

    def rates(rho: float, design: str) -> tuple[float, float]:
        z1, z2 = rng.standard_normal((2, 100000, 5))
        a, b = 0.02 * z1, 0.02 * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
        out = []
        for shift in (0.0, -0.02):
            diff, se, df = get(design).array_stats(a, b + shift)
            p, p_eq = array_p(diff, se, df, 0.0)
            codes = array_verdicts(diff, p, p_eq, 0.0, "max", 0.05, 0.05)
            out.append(float(np.mean(codes < 2 if shift == 0 else codes == 0)))
        return out[0], out[1]

    assert rates(-0.5, "welch")[0] > 0.08 and rates(-0.5, "paired")[0] < 0.055
    assert rates(0.8, "paired")[1] > rates(0.8, "welch")[1] + 0.3


def test_html_shows_the_correlation_and_its_note():
    from normreg.render.html import verdict_table

    c = welch_values(*_sides(-0.9), ACC, a_name="ref", b_name="new")
    html = verdict_table([Check("s", "pair", c)])
    assert "<th>seed r</th>" in html and f"{c.seed_correlation:+.2f}" in html
    assert "false-alarm rate is above alpha" in html
