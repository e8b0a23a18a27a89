"""The CLI end to end with the fake runner: exit codes, the report, baselines, compare. No training."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REGRESSION, SAME

from normreg.report.model import SCHEMA


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_regression_exits_1_and_report_has_the_schema(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite()
    out, report = tmp_path / "run", tmp_path / "r.json"
    res = cli("run", suite, "--out", out, "--report", report, "--baselines", tmp_path / "b", script=REGRESSION)
    assert res.exit_code == 1, res.output
    assert "regressed FAIL" in res.output and "Outcome: FAIL (exit 1)" in res.output
    data = _report(report)
    assert data["schema"] == SCHEMA and data["verdict"] == "fail" and data["exit_code"] == 1
    assert report.read_text().endswith("\n")
    assert list(data) == sorted(data)
    acc = next(c for c in data["comparisons"] if c["metric"] == "acc")
    for key in ("suite", "kind", "metric", "a", "b", "n_a", "n_b", "mean_a", "mean_b", "diff", "ci_low",
                "ci_high", "t", "df", "p_value", "verdict"):
        assert key in acc, key
    assert acc["kind"] == "pair" and acc["a"] == "merged" and acc["b"] == "twin" and acc["verdict"] == "regressed"
    assert acc["failed"] is True and acc["p_value"] < 0.01
    loss = next(c for c in data["comparisons"] if c["metric"] == "loss")
    assert loss["failed"] is False
    assert len(data["runs"]) == 10 and {r["seed"] for r in data["runs"]} == set(range(5))
    assert (out / "report.json").exists() and (out / "pair" / "results.csv").exists()


def test_same_implementation_passes(cli, write_suite, tmp_path: Path) -> None:
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=SAME)
    assert res.exit_code == 0, res.output
    assert "Outcome: PASS (exit 0)" in res.output
    assert "no stored baseline" in res.output


def test_results_are_tidy_and_complete(cli, write_suite, tmp_path: Path) -> None:
    import pandas as pd

    cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=REGRESSION)
    df = pd.read_csv(tmp_path / "run" / "pair" / "results.csv")
    assert list(df.columns) == ["suite", "variant", "seed", "metric", "value", "status", "duration_s", "error"]
    assert len(df) == 2 * 5 * 2
    twin_acc = df[(df.variant == "twin") & (df.metric == "acc")].sort_values("seed")["value"].tolist()
    assert twin_acc == REGRESSION["twin"]["acc"]


def test_failed_run_exits_3_and_others_go_on(cli, write_suite, tmp_path: Path) -> None:
    script = {"merged": SAME["merged"],
              "twin": {"acc": [0.98, RuntimeError("CUDA out of memory"), 0.97, float("nan"), 0.99],
                       "loss": [0.3] * 5}}
    report = tmp_path / "r.json"
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--report", report, "--baselines", tmp_path / "b",
              script=script)
    assert res.exit_code == 3, res.output
    data = _report(report)
    assert data["verdict"] == "error"
    failed = [r for r in data["runs"] if r["status"] == "failed"]
    assert [(r["seed"], r["error"].split(":")[0]) for r in failed] == [(1, "RuntimeError"), (3, "NonFiniteMetric")]
    assert "CUDA out of memory" in failed[0]["error"]
    assert sum(r["status"] == "ok" for r in data["runs"]) == 8
    assert "seed 1: RuntimeError: CUDA out of memory" in res.output


def test_expectations(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite(extra="expect: {twin: {acc: regressed}}\n")
    args = ("run", suite, "--baselines", tmp_path / "b")
    caught = cli(*args, "--out", tmp_path / "r1", "--report", tmp_path / "r.json", script=REGRESSION)
    assert caught.exit_code == 0, caught.output
    assert "regressed (expected)" in caught.output
    acc = next(c for c in _report(tmp_path / "r.json")["comparisons"] if c["metric"] == "acc")
    assert acc["verdict"] == "regressed" and acc["expected"] == "regressed" and acc["expected_failure"] is True
    # The bug no longer reproduces: a surprise fails the run.
    fixed = cli(*args, "--out", tmp_path / "r2", script=SAME)
    assert fixed.exit_code == 1 and "UNEXPECTED: expected regressed" in fixed.output
    # A user debugging the known bug wants it to fail.
    ignored = cli(*args, "--out", tmp_path / "r3", "--ignore-expect", script=REGRESSION)
    assert ignored.exit_code == 1 and "regressed FAIL" in ignored.output


def test_expected_crash(cli, write_suite, tmp_path: Path) -> None:
    suite = write_suite(extra="expect: {twin: failed}\n")
    crash = {"merged": SAME["merged"], "twin": ValueError("Expected more than 1 value per channel when training")}
    res = cli("run", suite, "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=crash)
    assert res.exit_code == 0, res.output
    assert "Expected more than 1 value per channel" in res.output and "(expected)" in res.output
    survived = cli("run", suite, "--out", tmp_path / "run2", "--baselines", tmp_path / "b", script=SAME)
    assert survived.exit_code == 1 and "no longer reproduced" in survived.output
    ignored = cli("run", suite, "--out", tmp_path / "run3", "--baselines", tmp_path / "b", "--ignore-expect",
                  script=crash)
    assert ignored.exit_code == 3


def test_baseline_written_only_when_asked_then_compared(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "r0", "--baselines", base, script=SAME)
    assert not base.exists()
    res = cli("run", suite, "--out", tmp_path / "r1", "--baselines", base, "--update-baseline", script=SAME)
    assert res.exit_code == 0 and "baseline written" in res.output
    stored = json.loads((base / "pair.json").read_text())
    assert stored["schema"] == "normreg.baseline/1"
    assert stored["variants"]["twin"]["acc"] == {"seeds": [0, 1, 2, 3, 4], "values": SAME["twin"]["acc"]}
    assert {"normreg", "python", "torch", "device", "git_commit", "date"} <= set(stored["environment"])
    assert stored["suite_digest"]
    # Next night, twin regresses: the pair check and twin's baseline check both fail, merged's baseline passes.
    res = cli("run", suite, "--out", tmp_path / "r2", "--baselines", base, "--report", tmp_path / "r.json",
              script=REGRESSION)
    assert res.exit_code == 1
    checks = {(c["kind"], c["b"], c["metric"]): c for c in _report(tmp_path / "r.json")["comparisons"]}
    assert checks[("baseline", "twin", "acc")]["verdict"] == "regressed"
    assert checks[("baseline", "twin", "acc")]["failed"] is True
    assert checks[("baseline", "merged", "acc")]["failed"] is False
    assert json.loads((base / "pair.json").read_text()) == stored  # untouched without --update-baseline


def test_baseline_check_fails_only_on_regression(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    worse = {"merged": REGRESSION["twin"], "twin": REGRESSION["twin"]}
    cli("run", suite, "--out", tmp_path / "r1", "--baselines", base, "--update-baseline", script=worse)
    res = cli("run", suite, "--out", tmp_path / "r2", "--baselines", base, "--report", tmp_path / "r.json",
              script={"merged": REGRESSION["merged"], "twin": REGRESSION["merged"]})
    checks = [c for c in _report(tmp_path / "r.json")["comparisons"] if c["kind"] == "baseline"]
    assert {c["verdict"] for c in checks if c["metric"] == "acc"} == {"improved"}
    assert not any(c["failed"] for c in checks) and res.exit_code == 0


def test_baseline_environment_difference_is_reported(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "r1", "--baselines", base, "--update-baseline", script=SAME)
    stored = json.loads((base / "pair.json").read_text())
    stored["environment"]["torch"] = "1.0.0"
    (base / "pair.json").write_text(json.dumps(stored))
    res = cli("run", suite, "--out", tmp_path / "r2", "--baselines", base, "--report", tmp_path / "r.json",
              script=SAME)
    assert "the baseline was made in another environment (torch 1.0.0 ->" in res.output
    c = next(c for c in _report(tmp_path / "r.json")["comparisons"] if c["kind"] == "baseline")
    assert c["environment_differences"]["torch"][0] == "1.0.0"


def test_bad_baseline_is_bad_input(cli, write_suite, tmp_path: Path) -> None:
    base = tmp_path / "baselines"
    base.mkdir()
    (base / "pair.json").write_text('{"schema": "normreg.baseline/9"}')
    res = cli("run", write_suite(), "--out", tmp_path / "r", "--baselines", base, script=SAME)
    assert res.exit_code == 2 and "schema 'normreg.baseline/9' is not known" in res.output


def test_misspelt_key_is_one_line_exit_2(cli, tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "bad" / "misspelt_top_key.yaml"
    res = cli("run", bad, "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0
    assert res.output.startswith(f"SuiteError: {bad}:3: varients: unknown key 'varients'. Did you mean 'variants'?")
    assert "Traceback" not in res.output


def test_debug_shows_traceback(cli, tmp_path: Path) -> None:
    bad = Path(__file__).parent / "data" / "bad" / "misspelt_top_key.yaml"
    res = cli("--debug", "run", bad, "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2 and "Traceback" in res.output


def test_seeds_option_and_set_override(cli, write_suite, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    res = cli("run", write_suite(), "--seeds", "3", "--set", "stats.alpha=0.01", "--out", tmp_path / "r",
              "--report", report, "--baselines", tmp_path / "b", script=REGRESSION)
    data = _report(report)
    assert {r["seed"] for r in data["runs"]} == {0, 1, 2}
    assert data["suites"][0]["alpha"] == 0.01
    acc = next(c for c in data["comparisons"] if c["metric"] == "acc")
    assert 0.01 < acc["p_value"] < 0.05  # would be a regression at the default alpha, not at 0.01
    assert acc["verdict"] == "inconclusive" and res.exit_code == 0


def test_folder_runs_every_suite(cli, write_suite, tmp_path: Path) -> None:
    write_suite(name="one")
    write_suite(name="two")
    report = tmp_path / "r.json"
    res = cli("run", tmp_path, "--out", tmp_path / "r", "--report", report, "--baselines", tmp_path / "b",
              script=SAME)
    assert res.exit_code == 0
    assert [s["name"] for s in _report(report)["suites"]] == ["one", "two"]


def test_compare_reports_and_baselines(cli, write_suite, tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "good", "--baselines", base, "--update-baseline", script=SAME)
    cli("run", suite, "--out", tmp_path / "bad", "--baselines", tmp_path / "none", script=REGRESSION)
    good, bad = tmp_path / "good" / "report.json", tmp_path / "bad" / "report.json"
    # Variants matched by name: merged vs merged passes, twin vs twin regressed.
    res = cli("compare", good, bad, "--report", tmp_path / "c.json")
    assert res.exit_code == 1, res.output
    checks = _report(tmp_path / "c.json")["comparisons"]
    assert {(c["b"], c["metric"]): c["verdict"] for c in checks}[("bad/report:twin", "acc")] == "regressed"
    # A report against a baseline, one variant picked on each side.
    res = cli("compare", f"{base / 'pair.json'}#merged", f"{bad}#merged", "--metric", "acc")
    assert res.exit_code == 0 and "pair:merged -> report:merged" in res.output
    # A run directory works too, and identical data passes.
    assert cli("compare", tmp_path / "good", good).exit_code == 0
    # Improvement fails a pair comparison but not a baseline-mode one.
    assert cli("compare", f"{bad}#twin", f"{good}#twin", "--metric", "acc").exit_code == 1
    assert cli("compare", f"{bad}#twin", f"{good}#twin", "--metric", "acc", "--mode", "baseline").exit_code == 0


def test_compare_tidy_csv(cli, tmp_path: Path) -> None:
    rows = ["variant,seed,metric,value"]
    rows += [f"a,{i},acc,{v}" for i, v in enumerate(REGRESSION["merged"]["acc"])]
    rows += [f"b,{i},acc,{v}" for i, v in enumerate(REGRESSION["twin"]["acc"])]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    res = cli("compare", f"{tmp_path / 't.csv'}#a", f"{tmp_path / 't.csv'}#b", "--min-effect", "0.01")
    assert res.exit_code == 1 and "regressed" in res.output


def test_compare_bad_inputs_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"schema": "something/1"}')
    for args, fragment in [
        (("compare", tmp_path / "missing.json", tmp_path / "x.json"), "no such file or directory"),
        (("compare", tmp_path / "x.json", tmp_path / "x.json"), "not valid JSON"),
        (("compare", tmp_path / "other.json", tmp_path / "other.json"), "not a normreg report or baseline"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2 and fragment in res.output, res.output


def test_compare_unknown_variant_suggests(cli, write_suite, tmp_path: Path) -> None:
    cli("run", write_suite(), "--out", tmp_path / "r", "--baselines", tmp_path / "b", script=SAME)
    rep = tmp_path / "r" / "report.json"
    res = cli("compare", f"{rep}#twn", f"{rep}#merged")
    assert res.exit_code == 2 and "Did you mean 'twin'?" in res.output


def test_an_earlier_run_directory_is_never_mixed_or_overwritten(cli, write_suite, tmp_path: Path) -> None:
    suite, out = write_suite(), tmp_path / "run"
    assert cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=SAME).exit_code == 0
    before = (out / "pair" / "results.csv").read_text()
    again = cli("run", suite, "--out", out, "--baselines", tmp_path / "b", script=REGRESSION)
    assert again.exit_code == 2 and "already holds the results of an earlier run" in again.output
    assert (out / "pair" / "results.csv").read_text() == before


def test_default_run_directories_never_collide(tmp_path: Path, monkeypatch) -> None:
    from normreg.pipeline import default_out_dir

    monkeypatch.chdir(tmp_path)
    first = default_out_dir()
    second = default_out_dir()
    assert second != first and first.is_dir() and second.is_dir() and second.parent == first.parent


def test_usage_errors_are_one_line_with_the_help_hint(cli, tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    for args, fragment in [
        (("run", "--bogus", suite), "No such option: --bogus"),
        (("run", "--workrs", "2", suite), "(Possible options: --workers)"),
        (("run", "--workers", "-3", suite), "Invalid value for '--workers'"),
        (("run", "--workers", "x", suite), "Invalid value for '--workers'"),
        (("run", suite, "--set"), "Option '--set' requires an argument"),
        (("compare", "a.json"), "Missing argument 'b'"),
        (("frob",), "No such command 'frob'"),
    ]:
        res = cli(*args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("UsageError: ") and fragment in lines[0], (args, res.output)
        assert "--help')" in lines[0] and "╭" not in res.output


def test_seed_counts_beyond_the_limit_are_usage_errors(cli, write_suite, tmp_path: Path) -> None:
    res = cli("run", write_suite(), "--seeds", "1000000000", "--out", tmp_path / "r", script=SAME)
    assert res.exit_code == 2 and "from 1 to 1000" in res.output and not (tmp_path / "r").exists()
