"""normreg/judge/baseline.py: baselines written only when asked, compared per environment, kept per device class
with --baseline-key, refused when malformed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg import cli
from normreg.environment import device_class
from normreg.errors import InputError, SuiteError
from normreg.execution.fake import FakeRunner
from normreg.judge.baseline import choose_baseline
from normreg.pipeline import run_suites
from normreg.render.html import render_html
from normreg.report.file import read_report
from normreg.suite.spec import load_suite
from tests.conftest import REGRESSION, SAME


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


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


def test_a_suite_changed_since_the_baseline_is_named_with_the_keys_that_changed(cli, write_suite,
                                                                               tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "r1", "--baselines", base, "--update-baseline", script=SAME)
    assert json.loads((base / "pair.json").read_text())["suite_content"]["name"] == "pair"
    res = cli("run", suite, "--out", tmp_path / "r2", "--baselines", base, "--report", tmp_path / "r.json",
              "--set", "metrics.acc.min_effect=0.02", script=SAME)
    note = "pair: the suite changed since the baseline (metrics.acc.min_effect: 0.01 -> 0.02)"
    assert note in res.output and "another environment" not in res.output, res.output
    c = next(c for c in _report(tmp_path / "r.json")["comparisons"] if c["kind"] == "baseline")
    assert c["suite_changes"] == ["metrics.acc.min_effect: 0.01 -> 0.02"] and "suite_digest" not in \
        c["environment_differences"]
    assert "<b>The suite changed since the baseline:</b> metrics.acc.min_effect: 0.01 -&gt; 0.02" in \
        render_html(read_report(tmp_path / "r.json").report)


def test_a_baseline_from_before_the_suite_content_was_kept_says_it_cannot_name_the_keys(cli, write_suite,
                                                                                        tmp_path: Path) -> None:
    suite, base = write_suite(), tmp_path / "baselines"
    cli("run", suite, "--out", tmp_path / "r1", "--baselines", base, "--update-baseline", script=SAME)
    stored = json.loads((base / "pair.json").read_text())
    del stored["suite_content"]
    stored["suite_digest"] = "0" * 64
    (base / "pair.json").write_text(json.dumps(stored))
    res = cli("run", suite, "--out", tmp_path / "r2", "--baselines", base, script=SAME)
    assert "pair: the suite changed since the baseline (digest 000000000000 -> " in res.output
    assert "which keys changed is not known" in res.output


def test_a_baseline_made_with_another_cpu_thread_count_is_noted(write_suite, tmp_path: Path) -> None:
    """CPU values are bit-identical for a seed only at the same torch thread count (reductions split differently),
    so the count the runs trained with is part of the environment a baseline is compared in."""

    class Threaded(FakeRunner):
        def __init__(self, script: object, threads: int) -> None:
            super().__init__(script)
            self.threads = threads

        def _result(self, job):  # noqa: ANN001, ANN202
            return replace(super()._result(job), threads=self.threads)

    suite, base = write_suite(), tmp_path / "baselines"
    run_suites([suite], executor=Threaded(SAME, 2), out=tmp_path / "r1", baselines=base, update_baseline=True)
    assert json.loads((base / "pair.json").read_text())["environment"]["torch_threads"] == "2"
    report = run_suites([suite], executor=Threaded(SAME, 1), out=tmp_path / "r2", baselines=base)
    assert report.environment["torch_threads"] == "1"
    c = next(c for c in report.checks if c.kind == "baseline")
    assert c.environment_differences["torch_threads"] == ["2", "1"]


def test_bad_baseline_is_bad_input(cli, write_suite, tmp_path: Path) -> None:
    base = tmp_path / "baselines"
    base.mkdir()
    (base / "pair.json").write_text('{"schema": "normreg.baseline/9"}')
    res = cli("run", write_suite(), "--out", tmp_path / "r", "--baselines", base, script=SAME)
    assert res.exit_code == 2 and "schema 'normreg.baseline/9' is not known" in res.output


H200 = "cuda:NVIDIA H200 x8"


def _run(monkeypatch, *args, script=SAME, device="cpu"):
    monkeypatch.setattr(cli, "make_executor", lambda *a, **k: FakeRunner(script, device=device))
    return CliRunner().invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize(("device", "cls"), [("cpu", "cpu"), (H200, "cuda-NVIDIA-H200"),
                                              ("cuda:Tesla T4 x1", "cuda-Tesla-T4"), (None, "unknown")])
def test_device_class_names_a_file(device, cls):
    assert device_class(device) == cls


def test_update_writes_the_device_baseline_and_not_the_plain_one(monkeypatch, write_suite, tmp_path):
    b = tmp_path / "b"
    r = _run(monkeypatch, "run", write_suite(), "--out", tmp_path / "r1", "--baselines", b, "--update-baseline",
             "--baseline-key", "device", device=H200)
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in b.iterdir()) == ["pair@cuda-NVIDIA-H200.json"]
    assert f"baseline written to {b / 'pair@cuda-NVIDIA-H200.json'}" in r.output
    stored = json.loads((b / "pair@cuda-NVIDIA-H200.json").read_text())
    assert stored["environment"]["device"] == H200


def test_each_device_class_is_judged_against_its_own_baseline(monkeypatch, write_suite, tmp_path):
    suite, b = write_suite(), tmp_path / "b"
    # the GPU gives the REGRESSION values, the CPU the SAME ones: each is its own normal
    _run(monkeypatch, "run", suite, "--out", tmp_path / "g", "--baselines", b, "--update-baseline",
         "--baseline-key", "device", script=REGRESSION, device=H200)
    _run(monkeypatch, "run", suite, "--out", tmp_path / "c", "--baselines", b, "--update-baseline",
         "--baseline-key", "device", script=SAME, device="cpu")
    assert sorted(p.name for p in b.iterdir()) == ["pair@cpu.json", "pair@cuda-NVIDIA-H200.json"]
    for device, script in ((H200, REGRESSION), ("cpu", SAME)):
        report = tmp_path / f"{device_class(device)}.json"
        r = _run(monkeypatch, "run", suite, "--out", tmp_path / f"again-{device_class(device)}", "--baselines", b,
                 "--baseline-key", "device", "--report", report, script=script, device=device)
        data = json.loads(report.read_text())
        assert data["suites"][0]["baseline"] == str(b / f"pair@{device_class(device)}.json")
        assert data["suites"][0]["baseline_note"] is None
        twin = [c for c in data["comparisons"] if c["kind"] == "baseline" and c["b"] == "twin" and c["metric"] == "acc"]
        assert twin[0]["verdict"] != "regressed" and twin[0]["diff"] == 0  # the same values as its baseline
        assert not twin[0]["environment_differences"]
    # and across classes the values do differ: the GPU's twin is 5 points worse than the CPU baseline's
    r = _run(monkeypatch, "run", suite, "--out", tmp_path / "cross", "--baselines", b, "--baseline-key", "none",
             script=REGRESSION, device=H200)
    assert "no stored baseline" in r.output


def test_without_a_device_baseline_the_plain_one_is_used_and_said(monkeypatch, write_suite, tmp_path):
    suite, b = write_suite(), tmp_path / "b"
    _run(monkeypatch, "run", suite, "--out", tmp_path / "plain", "--baselines", b, "--update-baseline", device="cpu")
    assert (b / "pair.json").exists()
    report = tmp_path / "r.json"
    r = _run(monkeypatch, "run", suite, "--out", tmp_path / "gpu", "--baselines", b, "--baseline-key", "device",
             "--report", report, script=REGRESSION, device=H200)
    assert r.exit_code == 1, r.output  # judged against the plain baseline: twin regressed
    assert (f"pair: no baseline for device cuda-NVIDIA-H200 ({b / 'pair@cuda-NVIDIA-H200.json'}); compared with "
            f"the plain baseline {b / 'pair.json'} instead") in r.output
    data = json.loads(report.read_text())
    assert data["suites"][0]["baseline"] == str(b / "pair.json")
    assert "compared with the plain baseline" in data["suites"][0]["baseline_note"]
    assert any(c["kind"] == "baseline" and c["verdict"] == "regressed" for c in data["comparisons"])


def test_the_suite_key_does_the_same_and_the_option_overrides_it(monkeypatch, write_suite, tmp_path):
    suite, b = write_suite(extra="baseline_key: device"), tmp_path / "b"
    _run(monkeypatch, "run", suite, "--out", tmp_path / "one", "--baselines", b, "--update-baseline", device="cpu")
    assert sorted(p.name for p in b.iterdir()) == ["pair@cpu.json"]
    _run(monkeypatch, "run", suite, "--out", tmp_path / "two", "--baselines", b, "--update-baseline",
         "--baseline-key", "none", device="cpu")
    assert sorted(p.name for p in b.iterdir()) == ["pair.json", "pair@cpu.json"]
    # where baselines live does not change results, so it does not change the suite's digest
    assert load_suite(suite).digest == load_suite(write_suite(name="pair", filename="other.yaml")).digest


def test_an_unknown_key_is_refused_with_a_suggestion(monkeypatch, write_suite, tmp_path):
    with pytest.raises(SuiteError, match=r"baseline_key: expected one of none, device, but found a string "
                                         r"\('devce'\)\. Did you mean 'device'\?"):
        load_suite(write_suite(extra="baseline_key: devce"))
    r = _run(monkeypatch, "run", write_suite(), "--out", tmp_path / "x", "--baselines", tmp_path / "b",
             "--baseline-key", "gpu")
    assert r.exit_code == 2 and "InputError: unknown baseline key 'gpu'; expected one of none, device" in r.output
    with pytest.raises(InputError, match="unknown baseline key"):
        choose_baseline(Path("b"), "s", "platfrom", {})
