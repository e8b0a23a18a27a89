"""The corpus of bad report, baseline and CSV files in tests/data/bad/: each is refused with exit 2 and one line
that names the file and the field, by every command that reads it. (The bad suites are in tests/suite/test_spec.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SAME

BAD = Path(__file__).parents[1] / "data" / "bad"

# file, the field or place named in the one-line error
REPORTS = [
    ("report_p_value_string", "comparisons[0].p_value: expected a number or null, found a string ('0.01')"),
    ("report_alpha_null", "suites[0].alpha: expected a number, found null"),
    ("report_metrics_list", "suites[0].metrics: expected an object, found a list"),
    ("report_created_number", "created: expected a string, found a number (20250301)"),
    ("report_run_metric_string", "runs[0].metrics.acc: expected a number, found a string ('high')"),
    ("report_truncated", ":31: not valid JSON"),
    # issue 23: the schema's enums and ranges, and the parsers' own limits
    ("report_verdict_pwned", "verdict: expected one of pass, fail, error, found a string ('pwned')"),
    ("report_kind_unknown", "comparisons[0].kind: expected one of pair, baseline, found a string ('sideways')"),
    ("report_exit_code_string", "exit_code: expected a whole number, found a string ('0')"),
    ("report_n_a_negative", "comparisons[0].n_a: expected a whole number >= 0, found a number (-5)"),
    ("report_created_garbage", "created: expected an ISO 8601 date and time"),
    ("report_huge_int", ": an integer of 5000 digits, over the limit of 100"),
    ("report_lone_surrogate", "comparisons[0].b: a string holding a lone surrogate (b\\ud800)"),
    ("report_deep_nesting", ": nested more than 64 levels deep"),
]
BASELINES = [
    ("baseline_nan", "variants.b.acc.values[1]: expected a finite number within ±1e+100, found a number (nan)"),
    ("baseline_infinity", "variants.b.acc.values[1]: expected a finite number within ±1e+100, found a number (inf)"),
    ("baseline_1e308", "variants.b.acc.values[1]: expected a finite number within ±1e+100, found a number (1e+308)"),
    ("baseline_float_seeds", "variants.a.acc.seeds[0]: expected a whole-number seed from 0 to 4294967295, found a "
                             "number (0.2)"),
    ("baseline_boolean_seeds", "variants.a.acc.seeds[0]: expected a whole-number seed from 0 to 4294967295, found a "
                               "boolean (false)"),
    ("baseline_duplicate_seeds", "variants.a.acc.seeds: seed 1 appears more than once"),
    ("baseline_huge_int", ": an integer of 5001 digits, over the limit of 100"),
    ("baseline_variant_name_slash", "variants.../b: a variant name cannot hold '/'"),
]
CSVS = [
    ("csv_duplicate_row", ":8: variant b, seed 1, metric acc already has a value on line 6"),
    ("csv_nan", ": variant b, metric acc: non-finite values (line 6: seed 1 is nan)"),
    ("csv_inf", ": variant a, metric acc: non-finite values (line 4: seed 2 is inf)"),
    ("csv_newline_name", ":5: variant 'b\\nInputError: all fine': a name must hold only printable characters"),
]


def _one_line(res: object, path: Path, fragment: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert lines[0].startswith(("ResultsError: ", "InputError: ")) and str(path) in lines[0], lines[0]
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("name,fragment", REPORTS, ids=[c[0] for c in REPORTS])
@pytest.mark.parametrize("command", ["report", "history", "compare"])
def test_bad_report(cli, name: str, fragment: str, command: str) -> None:
    path = BAD / f"{name}.json"
    args = (command, path, path) if command == "compare" else (command, path)
    _one_line(cli(*args), path, fragment)


@pytest.mark.parametrize("name,fragment", BASELINES, ids=[c[0] for c in BASELINES])
def test_bad_baseline(cli, write_suite, tmp_path: Path, name: str, fragment: str) -> None:
    path = BAD / f"{name}.json"
    _one_line(cli("compare", f"{path}#a", f"{path}#b"), path, fragment)
    # As the stored baseline of a suite: refused before anything runs.
    stored = tmp_path / "baselines" / "pair.json"
    stored.parent.mkdir()
    shutil.copy(path, stored)
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", stored.parent, script=SAME)
    _one_line(res, stored, fragment)
    assert not (tmp_path / "run").exists()


def test_baseline_of_another_suite(cli, write_suite, tmp_path: Path) -> None:
    stored = tmp_path / "baselines" / "pair.json"
    stored.parent.mkdir()
    shutil.copy(BAD / "baseline_other_suite.json", stored)
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", stored.parent, script=SAME)
    _one_line(res, stored, "suite: this baseline is of suite 'other', not 'pair'")


@pytest.mark.parametrize("name,fragment", CSVS, ids=[c[0] for c in CSVS])
def test_bad_csv(cli, name: str, fragment: str) -> None:
    path = BAD / f"{name}.csv"
    _one_line(cli("compare", f"{path}#a", f"{path}#b"), path, fragment)


def test_non_finite_values_of_a_metric_not_compared_are_left_out(cli, tmp_path: Path) -> None:
    rows = (BAD / "csv_nan.csv").read_text().replace(",acc,nan", ",loss,nan")
    (tmp_path / "t.csv").write_text(rows)
    res = cli("compare", f"{tmp_path / 't.csv'}#a", f"{tmp_path / 't.csv'}#b", "--metric", "acc")
    assert res.exit_code in (0, 1) and "nan" not in res.output.lower()


@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_compare_min_effect_must_be_finite_and_not_negative(cli, value: str) -> None:
    path = BAD / "csv_duplicate_row.csv"
    res = cli("compare", f"{path}#a", f"{path}#b", f"--min-effect={value}")
    assert res.exit_code == 2 and "expected --min-effect to be a finite number >= 0" in res.output, res.output


def test_history_says_which_files_it_left_out(cli, tmp_path: Path) -> None:
    nights = tmp_path / "nights"
    nights.mkdir()
    shutil.copy(BAD.parent / "bad" / "report_truncated.json", nights / "cut.json")
    res = cli("history", nights)
    assert res.exit_code == 2 and "not valid JSON" in res.output and "cut.json" in res.output
    good = tmp_path / "good.json"
    bad_free = (BAD / "report_alpha_null.json").read_text().replace('"alpha": null', '"alpha": 0.05')
    good.write_text(bad_free)
    shutil.copy(good, nights / "good.json")
    res = cli("history", nights)
    assert res.exit_code == 0, res.output
    assert "Left out, not valid JSON" in res.output and "cut.json (line 31" in res.output


def test_every_file_of_the_corpus_is_tested() -> None:
    from tests.suite.test_spec import CASES

    tested = {c[0] for c in REPORTS + BASELINES + CSVS} | {"baseline_other_suite"} | {c[0] for c in CASES}
    tested |= {"seeds_min_above_max", "seeds_plan_one", "seeds_typo", "stats_correction", "stats_design"}
    tested |= {"repro_injection"}  # a valid suite whose names were code in repro's script: test_refused.py
    assert {p.stem for p in BAD.iterdir()} <= tested


def test_plan_and_calibrate_refuse_non_finite_values_naming_the_line(cli, tmp_path: Path) -> None:
    path = BAD / "csv_nan.csv"
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nmetrics: {acc: {min_effect: 0.01}}\nvariants: {a: {model: m:M}, b: {model: m:M}}\n")
    fragment = ": variant b, metric acc: non-finite values (line 6: seed 1 is nan)"
    _one_line(cli("calibrate", path, "--min-effect", "0.01", "--reps", "100"), path, fragment)
    _one_line(cli("plan", suite, "--pilot", path), path, fragment)
