"""The README is the contract: every command and option it documents exists, every suite key it lists loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg.cli import app
from normreg.suite.spec import load_suite

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n## ", start + len(title))
    return README[start:end if end != -1 else None]


COMMAND_ROWS = [line for line in _section("## Commands").splitlines() if line.startswith("| `normreg ")]


def test_commands_table_is_not_empty() -> None:
    assert len(COMMAND_ROWS) >= 7


@pytest.mark.parametrize("row", COMMAND_ROWS, ids=[r.split("`")[1].split()[1] for r in COMMAND_ROWS])
def test_documented_command_and_options_exist(row: str) -> None:
    usage = row.split("`")[1]
    command = usage.split()[1]
    options = set(re.findall(r"--[a-z][a-z-]*", usage))
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    for option in options:
        assert option in res.output, f"README documents {option} for '{command}', the CLI does not have it"


def test_every_suite_key_in_the_table_loads(tmp_path: Path) -> None:
    table = _section("## Suite format")
    keys = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert set(keys) == {"name", "description", "data", "trainer", "seeds", "metrics", "reference", "variants",
                         "expect", "stats", "baseline_key"}
    (tmp_path / "s.yaml").write_text(
        "name: s\ndescription: every key\ndata: m:D\ntrainer: {max_epochs: 1}\nseeds: 2\n"
        "metrics: {acc: {goal: max, min_effect: 0.01}}\nreference: a\n"
        "variants: {a: {model: m:A}, b: {model: m:B}}\nexpect: {b: regressed}\n"
        "stats: {alpha: 0.05, design: paired, correction: holm, spending: pocock}\nbaseline_key: device\n")
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.expected("b", "acc") == "regressed" and suite.stats.design == "paired"
    assert suite.baseline_key == "device"


def test_documented_exit_codes_are_the_clis() -> None:
    from normreg.report.model import EXIT_ERROR, EXIT_FAIL, EXIT_INPUT, EXIT_PASS

    table = _section("### Exit codes")
    codes = [int(c) for c in re.findall(r"^\| (\d) \|", table, flags=re.M)]
    assert codes == [EXIT_PASS, EXIT_FAIL, EXIT_INPUT, EXIT_ERROR]
