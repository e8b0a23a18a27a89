"""Small things a user trips over in the first hour (each once seen)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from typer.testing import CliRunner

import normreg
from normreg import cli as cli_module
from tests.conftest import SAME


def test_version(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--version")
    assert result.exit_code == 0 and result.output == f"normreg {normreg.__version__}\n"


def test_help_shows_no_bool_placeholders() -> None:
    for command in ("run", "compare", "plan", "calibrate", "report", "history", "audit", "repro"):
        out = CliRunner().invoke(cli_module.app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "<bool>" not in out and "--help" in out, command


def test_report_accepts_a_run_directory(tmp_path: Path, write_suite, cli) -> None:  # type: ignore[no-untyped-def]
    cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=SAME)
    result = cli("report", tmp_path / "run", "--markdown", tmp_path / "s.md")
    assert result.exit_code == 0 and "Outcome: PASS" in result.output and (tmp_path / "s.md").exists()
    empty = cli("report", tmp_path)
    assert empty.exit_code == 2 and "a folder without report.json" in empty.output


def test_update_baseline_says_once_what_happened(tmp_path: Path, write_suite, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", "--update-baseline",
                 script=SAME)
    assert "no stored baseline;" not in result.output
    assert "pair: baseline written (the first: none was stored, so only the pair checks were made)" in result.output
    again = cli("run", write_suite(), "--out", tmp_path / "run2", "--baselines", tmp_path / "b", "--update-baseline",
                script=SAME)
    assert "  pair: baseline written\n" in again.output


def test_plan_leaves_no_pilot_folder(tmp_path: Path, write_suite, cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = cli("plan", write_suite(), "--baselines", tmp_path / "none", "--pilot-seeds", "3", script=SAME)
    assert result.exit_code == 0, result.output
    assert "pilot" in result.output and list(temp.iterdir()) == []
