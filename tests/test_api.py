"""The public Python API and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import normreg
from normreg.execution.fake import FakeRunner
from tests.conftest import REGRESSION, SAME

ROOT = Path(__file__).parent.parent


def test_import_normreg_stays_light() -> None:
    code = ("import sys, normreg; heavy = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'scipy', "
            "'normreg.pipeline') if m in sys.modules]; print(heavy, callable(normreg.run))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.strip() == "[] True", out.stderr


def test_run_compare_audit_return_the_report_objects(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    from normreg.report.model import Report

    suite = write_suite()
    report = normreg.run(suite, out=tmp_path / "run", baselines=tmp_path / "b", executor=FakeRunner(REGRESSION))
    assert isinstance(report, Report) and report.exit_code == 1
    assert (tmp_path / "run" / "report.json").exists()
    same = normreg.run([suite], out=tmp_path / "same", baselines=tmp_path / "b", executor=FakeRunner(SAME))
    assert same.exit_code == 0
    both = normreg.compare(tmp_path / "run" / "report.json", tmp_path / "same" / "report.json")
    assert isinstance(both, Report) and {c.comparison.b for c in both.checks} == {"same/report:merged",
                                                                                   "same/report:twin"}
    assert normreg.__all__ == ["__version__", "audit", "compare", "run"]


def test_audit_returns_its_report() -> None:
    from normreg.auditing.findings import AuditReport

    found = normreg.audit(ROOT / "tests" / "data" / "suites" / "userproj" / "wine.yaml", variants=["own_loaders"])
    assert isinstance(found, AuditReport) and found.variants == ("base", "own_loaders")


def test_run_compare_audit_are_the_api_functions_with_their_signatures() -> None:
    # In a fresh interpreter: importing the stages' modules must not rebind the names (a submodule import binds
    # its name on the package), and help() must show the function's own text, not a package docstring.
    code = ("import inspect, pydoc, normreg, normreg.execution.worker, normreg.comparison, normreg.auditing.run\n"
            "from normreg import api\n"
            "for name in ('run', 'compare', 'audit'):\n"
            "    f = getattr(normreg, name)\n"
            "    assert f is getattr(api, name) and inspect.isfunction(f), (name, f)\n"
            "    print(name, list(inspect.signature(f).parameters)[:2], f.__doc__.split(':')[0])\n"
            "print('help' if '`normreg run`: train and judge' in pydoc.render_doc(normreg.run) else 'no help')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.stdout.splitlines() == ["run ['suites', 'seeds'] `normreg run`", "compare ['a', 'b'] `normreg compare`",
                                       "audit ['suite', 'variants'] `normreg audit`", "help"], out.stderr
    assert not (ROOT / "normreg" / "_callable.py").exists()


def test_the_plugin_is_an_entry_point() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points.pytest11]\nnormreg = "normreg.pytest_plugin"\n' in text


CONFTEST = '''
import normreg.pytest_plugin as plugin
from normreg.execution.fake import FakeRunner

# A team's CI would train for real; this project's test scripts the values instead.
plugin.make_executor = lambda *a, **k: FakeRunner({script!r})
'''


def test_pytest_collects_each_check_with_its_verdict(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    suites = tmp_path / "suites"
    suites.mkdir()
    write_suite(name="pair", extra="expect: {twin: {acc: regressed}}").rename(suites / "pair.yaml")
    (suites / "notes.yaml").write_text("just: a yaml file that is not a suite\n")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(script=REGRESSION)))
    # the plugin comes from the installed entry point (pytest11), as it does for a team that installs normreg
    args = [sys.executable, "-m", "pytest", "--normreg", "suites", "-v",
            "-p", "no:cacheprovider", "--normreg-baselines", str(tmp_path / "b"), "--normreg-out", str(tmp_path / "r"),
            "-o", "addopts=", "--rootdir", str(tmp_path)]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    text = out.stdout + out.stderr
    assert "suites/pair.yaml::runs PASSED" in text, text
    assert "suites/pair.yaml::pair[twin-acc] XFAIL" in text
    assert "suites/pair.yaml::pair[twin-loss] PASSED" in text and "notes.yaml" not in text
    assert out.returncode == 0 and "2 passed, 1 xfailed" in text
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(script=REGRESSION)))
    write_suite(name="pair").rename(suites / "pair.yaml")  # no expectation: the regression fails the test
    args[args.index(str(tmp_path / "r"))] = str(tmp_path / "r2")
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "suites/pair.yaml::pair[twin-acc] FAILED" in text, text
    assert "regressed: acc (max is better): twin is worse by" in text and "merged: mean 0.984 sd" in text


def test_a_check_reads_flat_as_its_json_and_checks_frame(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    import math

    report = normreg.run(write_suite(), out=tmp_path / "run", baselines=tmp_path / "b",
                         executor=FakeRunner(REGRESSION))
    frame = report.checks_frame()
    for i, check in enumerate(report.checks):
        assert (check.a, check.b, check.metric, check.diff) == (check.comparison.a, check.comparison.b,
                                                                check.comparison.metric, check.comparison.diff)
        for column, value in check.to_json().items():  # every field the JSON and the frame show, by its name
            got = getattr(check, column)
            assert got == value or list(got) == value or (isinstance(value, float) and math.isclose(got, value))
            assert column in frame.columns and column in dir(check)
        assert frame.loc[i, "verdict"] == check.verdict
    with pytest.raises(AttributeError, match="'Check' object has no attribute 'retest'"):
        report.checks[0].retest  # noqa: B018 - the test's own values stay under .comparison
