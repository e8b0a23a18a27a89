"""The README and the manual (docs/) are the contract: every command and option they show exists, every suite key
the reference lists loads, and the exit codes they give are the CLI's."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from normreg.cli import app
from normreg.suite.building import SUITE_KEYS
from normreg.suite.spec import load_suite

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
PAGES = {
    path.relative_to(ROOT).as_posix(): path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "docs").rglob("*.md"))
}
TEXTS = {"README.md": README, **PAGES}


def section(text: str, title: str) -> str:
    """From the heading `title` to the next heading of the same or a higher level."""
    start = text.index(title)
    level = len(title) - len(title.lstrip("#"))
    ends = [m.start() for m in re.finditer(rf"^#{{1,{level}}} ", text[start + len(title) :], flags=re.M)]
    return text[start : start + len(title) + ends[0] if ends else None]


@functools.cache
def _help(command: str) -> str:
    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert res.exit_code == 0, res.output
    return res.output


@functools.cache
def _options(command: str) -> frozenset[str]:
    """The options `normreg COMMAND` really has, as whole tokens (`--out` is not `--output`), from the CLI itself."""
    import typer.main

    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    return frozenset(o for p in params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")) | {"--help"}


def test_options_are_matched_whole() -> None:
    assert "--output" in _options("repro") and "--out" in _help("repro") and "--out" not in _options("repro")
    assert {"--out", "--resume", "--workers", "--help"} <= _options("run")


COMMANDS_PAGE = PAGES["docs/commands.md"]
COMMAND_ROWS = [line for line in COMMANDS_PAGE.splitlines() if line.startswith("| `normreg ")]


def test_commands_table_is_not_empty() -> None:
    assert len(COMMAND_ROWS) >= 9


@pytest.mark.parametrize("row", COMMAND_ROWS, ids=[r.split("`")[1].split()[1] for r in COMMAND_ROWS])
def test_documented_command_and_options_exist(row: str) -> None:
    usage = row.split("`")[1]
    command = usage.split()[1]
    for option in set(re.findall(r"--[a-z][a-z-]*", usage)):
        assert option in _options(command), \
            f"docs/commands.md documents {option} for '{command}', the CLI does not have it"


def _command_lines() -> list[tuple[str, str]]:
    """Every command line the README and the pages show, with its page: each line of a code block, and each
    inline code span, that starts with `normreg COMMAND` (after a `$ ` prompt or `.venv/bin/`)."""
    found = []
    for name, text in TEXTS.items():
        blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
        # a command continued with a trailing backslash is one line: its later options are checked too
        lines = [line.split(" #")[0] for block in blocks for line in block.replace("\\\n", " ").splitlines()]
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for candidate in lines + spans:
            match = re.match(r"\s*(?:\$ )?(?:\.venv/bin/)?(normreg (?:--debug )?[a-z]+\b[^;&|]*)", candidate)
            if match:
                found.append((name, match.group(1).strip()))
    return found


COMMAND_LINES = _command_lines()
COMMANDS = {"run", "compare", "plan", "calibrate", "report", "history", "bisect", "audit", "repro"}


def test_the_docs_show_commands() -> None:
    assert len(COMMAND_LINES) >= 50
    assert {line.replace("--debug ", "").split()[1] for _, line in COMMAND_LINES} == COMMANDS


@pytest.mark.parametrize("page,line", COMMAND_LINES, ids=[f"{p}:{line[:60]}" for p, line in COMMAND_LINES])
def test_every_command_line_in_the_docs_exists(page: str, line: str) -> None:
    words = [w for w in line.split()[1:] if w != "--debug"]
    assert words[0] in COMMANDS, f"{page} shows 'normreg {words[0]}', which is not a command: {line}"
    for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", " ".join(words[1:])):
        assert option in _options(words[0]), \
            f"{page} shows {option} for 'normreg {words[0]}', the CLI does not have it: {line}"


def test_the_commands_the_docs_know_are_the_clis() -> None:
    res = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    listed = set(re.findall(r"^\s{2}([a-z]+)\s", res.output.split("Commands:")[1], flags=re.M))
    assert listed == COMMANDS


def test_pytest_plugin_options_in_the_docs_exist() -> None:
    plugin = (ROOT / "normreg" / "pytest_plugin.py").read_text(encoding="utf-8")
    options = {o for text in TEXTS.values() for o in re.findall(r"--normreg[a-z-]*", text)}
    assert "--normreg" in options
    for option in options:
        assert f'"{option}"' in plugin, f"the docs show the pytest option {option}; the plugin does not add it"


def test_every_suite_key_in_the_table_loads(tmp_path: Path) -> None:
    table = section(PAGES["docs/suites.md"], "# Suite format")
    keys = re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M)
    assert set(keys) == set(SUITE_KEYS)  # every key the loader takes, and no other
    (tmp_path / "s.yaml").write_text(
        "name: s\ndescription: every key\ndata: m:D\ntrainer: {max_epochs: 1}\nseeds: 2\n"
        "metrics: {acc: {goal: max, min_effect: 0.01}}\nreference: a\n"
        "variants: {a: {model: m:A}, b: {model: m:B}}\nexpect: {b: regressed}\n"
        "stats: {alpha: 0.05, design: paired, correction: holm, spending: pocock}\nbaseline_key: device\n"
        "run_timeout: 30m\ncurves: [acc]\ncheckpoint: {every_n_epochs: 2, keep: true}\n"
    )
    suite = load_suite(tmp_path / "s.yaml")
    assert suite.expected("b", "acc") == "regressed" and suite.stats.design == "paired"
    assert suite.baseline_key == "device"
    assert suite.run_timeout == 1800 and [m.name for m in suite.curves.metrics] == ["acc"]
    assert suite.checkpoint is not None and suite.checkpoint.every_n_epochs == 2 and suite.checkpoint.keep


@pytest.mark.parametrize("page", ["README.md", "docs/commands.md"])
def test_documented_exit_codes_are_the_clis(page: str) -> None:
    from normreg.errors import ExitCode

    table = section(TEXTS[page], "## Exit codes")
    codes = [int(c) for c in re.findall(r"^\| (\d) \|", table, flags=re.M)]
    assert codes == [c for c in ExitCode if c < 128]
    stops = re.search(r"exits (\d+) \([^)]*\) or (\d+) \(", TEXTS[page])  # the signals' codes, in a sentence
    assert stops and [int(c) for c in stops.groups()] == [ExitCode.STOPPED_SIGINT, ExitCode.STOPPED_SIGTERM]


def test_the_readmes_tour_suite_is_the_tutorials() -> None:
    """The README's five-minute tour shows the tutorial's suite, which the tests run (test_readme_own_model.py)."""
    tour = re.search(r"```yaml\n(# my_suite.yaml\n.*?)```", README, flags=re.S)
    tutorial = re.search(r"```yaml\n(# my_suite.yaml\n.*?)```", PAGES["docs/tutorial.md"], flags=re.S)
    assert tour and tutorial and tour.group(1) == tutorial.group(1)
