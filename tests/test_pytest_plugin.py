"""The pytest plugin: each check its own named item in failure headers, `-k`, `--lf` and JUnit XML."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import REGRESSION

ROOT = Path(__file__).parent.parent

CONFTEST = '''
import normreg.pytest_plugin as plugin
from normreg.execution.fake import FakeRunner

plugin.make_executor = lambda *a, **k: FakeRunner({script!r})
'''


def _pytest(tmp_path: Path, *extra: str) -> tuple[int, str]:
    """pytest --normreg on tmp_path/suites in a fresh process (its own run directory each time); the cache kept."""
    runs = len(list(tmp_path.glob("r*")))
    args = [sys.executable, "-m", "pytest", "--normreg", "suites", "-v", "-o", "addopts=", "--rootdir",
            str(tmp_path), "--normreg-baselines", str(tmp_path / "b"), "--normreg-out", str(tmp_path / f"r{runs}"),
            *extra]
    out = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    return out.returncode, out.stdout + out.stderr


def test_each_check_is_its_own_item_in_headers_junit_k_and_lf(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "suites").mkdir()
    write_suite(name="pair").rename(tmp_path / "suites" / "pair.yaml")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(script=REGRESSION)))

    code, text = _pytest(tmp_path, "--junitxml", str(tmp_path / "junit.xml"))
    assert code == 1 and "1 failed, 2 passed" in text, text
    # the failure is headed by the suite and its check (pytest writes "test session" when an item names nothing)
    assert "_ pair::pair[twin-acc] _" in text and "test session _" not in text, text
    # the failure text is the check's row of the verdict table, its reason and its numbers
    assert "suite  kind  metric  a -> b" in text
    assert any(line.startswith("pair   pair  acc     merged -> twin") and line.endswith("regressed FAIL")
               for line in text.splitlines()), text
    assert "twin is worse by 0.049" in text and "merged: mean 0.984 sd" in text
    cases = {c.get("name"): c for c in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert set(cases) == {"runs", "pair[twin-acc]", "pair[twin-loss]"}
    assert cases["pair[twin-acc]"].find("failure") is not None and cases["pair[twin-loss]"].find("failure") is None

    code, text = _pytest(tmp_path, "--lf")  # only the check that failed runs again
    assert "rerun previous 1 failure" in text and "collected 1 item" in text and "= 1 failed in" in text, text
    assert "suites/pair.yaml::pair[twin-acc] FAILED" in text and "twin-loss" not in text

    code, text = _pytest(tmp_path, "-p", "no:cacheprovider", "-k", "twin and loss")
    assert code == 0 and "suites/pair.yaml::pair[twin-loss] PASSED" in text and "1 passed, 2 deselected" in text, text


def test_a_run_refused_before_training_leaves_no_run_directory(tmp_path: Path, write_suite) -> None:  # type: ignore[no-untyped-def]
    """Without --normreg-out the run directory is made by the run itself, and removed when nothing trained (here:
    the suite's stored baseline cannot be read, found after collection, before any run)."""
    (tmp_path / "suites").mkdir()
    write_suite(name="pair").rename(tmp_path / "suites" / "pair.yaml")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "pair.json").write_text("{")
    (tmp_path / "conftest.py").write_text(textwrap.dedent(CONFTEST.format(script=REGRESSION)))
    out = subprocess.run([sys.executable, "-m", "pytest", "--normreg", "suites", "-o", "addopts=", "--rootdir",
                          str(tmp_path), "-p", "no:cacheprovider", "--normreg-baselines", str(tmp_path / "b")],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "pair.json" in out.stdout + out.stderr, out.stdout + out.stderr
    left = list((tmp_path / "runs").iterdir()) if (tmp_path / "runs").exists() else []
    assert left == []
