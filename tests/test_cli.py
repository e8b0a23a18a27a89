"""normreg/cli.py end to end with the fake executor: exit codes, the terminal summary, the report, the `report`
and `history` commands and the output formats. No training."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from normreg import cli
from normreg.execution.fake import FakeRunner
from normreg.render.markdown import render_markdown
from normreg.report.file import read_report
from normreg.report.model import SCHEMA
from tests.conftest import REGRESSION, SAME
from tests.scripted import PAIRS, REPORT_SUITES, drift_script


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


ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return CliRunner().invoke(cli.app, [str(a) for a in args])


def test_report_writes_every_format(report_path, tmp_path):
    out = tmp_path / "out"
    r = invoke("report", report_path, "--html", out / "r.html", "--markdown", out / "r.md", "--junit", out / "j.xml")
    assert r.exit_code == 0, r.output
    assert "Outcome: ERROR (exit 3)" in r.output
    for name in ("r.html", "r.md", "j.xml"):
        assert (out / name).stat().st_size > 500
        assert f"Wrote {out / name}" in r.output
    assert (out / "r.md").read_text(encoding="utf-8") == render_markdown(read_report(report_path).report)


def test_report_on_a_bad_file_exits_2(tmp_path):
    r = invoke("report", tmp_path / "missing.json", "--markdown", tmp_path / "x.md")
    assert r.exit_code == 2
    assert "ResultsError:" in r.output and "missing.json: no such file" in r.output
    assert not (tmp_path / "x.md").exists()


def test_run_writes_the_formats_from_its_own_report(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "make_executor", lambda *a, **k: FakeRunner({**PAIRS, **drift_script(2)}))
    shutil.copytree(REPORT_SUITES, tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    r = invoke("run", "suites", "--out", "runs/n", "--report", "reports/report.json", "--html", "reports/report.html",
               "--markdown", "reports/summary.md", "--junit", "reports/junit.xml")
    assert r.exit_code == 3, r.output  # drift/c crashed on one seed
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["junit.xml", "report.html", "report.json", "summary.md"]
    summary = (reports / "summary.md").read_text(encoding="utf-8")
    assert summary == render_markdown(read_report(reports / "report.json").report)
    assert summary.startswith("## normreg: 💥 ERROR (exit 3)")


def test_history_command(nights_dir, tmp_path):
    r = invoke("history", nights_dir, "--html", tmp_path / "h.html")
    assert r.exit_code == 0, r.output
    assert "drift: acc (higher is better)" in r.output and "5 nights, 2 not passing" in r.output
    assert (tmp_path / "h.html").read_text(encoding="utf-8").count("<svg ") == 3
    bad = invoke("history", tmp_path / "nothing-here")
    assert bad.exit_code == 2 and "no such file or directory" in bad.output


def test_formats_do_not_import_torch(report_path, nights_dir, tmp_path):
    """Every format is made from the report alone: torch and Lightning are never imported."""
    script = textwrap.dedent(f"""
        import sys
        from normreg import cli
        for args in (["report", {str(report_path)!r}, "--html", {str(tmp_path / "r.html")!r},
                      "--markdown", {str(tmp_path / "r.md")!r}, "--junit", {str(tmp_path / "r.xml")!r}],
                     ["history", {str(nights_dir)!r}, "--html", {str(tmp_path / "h.html")!r}]):
            sys.argv = ["normreg", *args]
            try:
                cli.main()
            except SystemExit as e:
                assert e.code == 0, (args, e.code)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "pytorch_lightning", "lightning"))
        print("HEAVY", heavy)
        assert "matplotlib" not in sys.modules  # the figures are written as SVG, no plotting library imported
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout
    assert all((tmp_path / n).exists() for n in ("r.html", "r.md", "r.xml", "h.html"))
    assert (tmp_path / "r.html").read_text().count("<svg") == 4 and "<svg" in (tmp_path / "h.html").read_text()
    json.loads(report_path.read_text())  # untouched


def test_outputs_are_readable_like_any_new_file(report_path, tmp_path):
    old = os.umask(0o022)
    try:
        assert invoke("report", report_path, "--markdown", tmp_path / "s.md").exit_code == 0
    finally:
        os.umask(old)
    assert (tmp_path / "s.md").stat().st_mode & 0o777 == 0o644


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


def test_the_first_line_of_a_run_says_the_checks_passed_and_where_it_trains(cli, write_suite, tmp_path: Path) -> None:
    """In a log, the first line comes as soon as every suite is loaded and checked, not with the first run's end;
    a suite refused by the checks still prints its one line and nothing else."""
    res = cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=SAME)
    lines = res.output.splitlines()
    assert lines[0] == f"Checked every suite; training into {tmp_path / 'run'}" and lines[1].startswith("[1/10] ")
    bad = cli("run", write_suite(extra="metrcs: {}\n", name="bad"), "--out", tmp_path / "r2",
              "--baselines", tmp_path / "b", script=SAME)
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_a_command_that_imported_torch_skips_the_teardown_but_not_the_exit_handlers(tmp_path: Path) -> None:
    """The console script leaves a process that imported torch without the interpreter's module teardown (seconds
    on a small machine), yet runs every exit handler, flushes the output and keeps the exit status; a process
    without torch exits as usual."""
    program = textwrap.dedent("""
        import atexit, sys
        from pathlib import Path
        out = Path(sys.argv[1])
        if sys.argv[2] == "torch":
            import torch
        atexit.register(lambda: (out / "exit handler").write_text("ran"))
        class Teardown:  # a module global: only the interpreter's teardown deletes it
            def __del__(self):
                (out / "teardown").write_text("ran")
        kept = Teardown()
        sys.argv = ["normreg", "compare", str(out / "missing-a.json"), str(out / "missing-b.json")]
        from normreg.cli import main
        main()
    """)
    for mode in ("torch", "plain"):
        where = tmp_path / mode
        where.mkdir()
        done = subprocess.run([sys.executable, "-c", program, str(where), mode], capture_output=True, text=True)
        assert done.returncode == 2, done.stderr  # compare's "no such file": exit 2 either way
        assert "missing-a.json" in done.stdout + done.stderr
        assert (where / "exit handler").read_text() == "ran"
        assert (where / "teardown").exists() == (mode == "plain"), mode


# ------------------------------------------------------------------------- cli.py's shape: options, exit codes

CLI_SOURCE = Path(cli.__file__).read_text()
# Options of one name that are two options: one value in one command, several (repeatable) in another.
SAME_NAME_OTHER_ARITY = {"--variant": "bisect and repro follow one variant; audit takes several",
                         "--metric": "bisect judges one metric; compare takes several"}


def _typer_option(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Option" \
        and isinstance(node.func.value, ast.Name) and node.func.value.id == "typer"


def declared_options(source: str) -> list[tuple[str, int]]:
    """(flag, line) of every `typer.Option(...)` in `source`: its explicit names, else the parameter's whose type
    holds it; options made from a registry (names that are not string literals) are left out."""
    tree = ast.parse(source)
    by_param: dict[int, str] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in [*fn.args.args, *fn.args.kwonlyargs]:
                for node in ast.walk(arg.annotation) if arg.annotation else ():
                    if _typer_option(node):
                        by_param[id(node)] = "--" + arg.arg.strip("_").replace("_", "-")
    found = []
    for node in ast.walk(tree):
        if not _typer_option(node):
            continue
        names = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
        if not node.args:
            assert id(node) in by_param, f"cli.py:{node.lineno}: an option without a name outside a parameter"
            names = [by_param[id(node)]]
        found += [(name, node.lineno) for name in names]
    return found


def test_the_option_checker_sees_each_way_of_declaring_an_option() -> None:
    source = textwrap.dedent('''
        Shared = Annotated[int, typer.Option("--shared", "-s", help="x")]
        def a(shared: Shared, own_flag: Annotated[int, typer.Option(help="y")], set_: Annotated[
              int, typer.Option("--set")]) -> None: ...
        def b(made: Annotated[int, typer.Option(f"--{name}")]) -> None: ...
        def c(again: Annotated[int, typer.Option("--own-flag")]) -> None: ...
    ''')
    assert sorted(name for name, _ in declared_options(source)) == ["--own-flag", "--own-flag", "--set", "--shared"]


def test_each_option_is_declared_once() -> None:
    """An option that several commands take is one typed alias (`SuiteOverrides`, `ReportOut`, ...): one spelling,
    one help text, wherever it appears."""
    lines: dict[str, list[int]] = {}
    for name, line in declared_options(CLI_SOURCE):
        lines.setdefault(name, []).append(line)
    twice = {name: at for name, at in lines.items() if len(at) > 1}
    assert {name: at for name, at in twice.items() if name not in SAME_NAME_OTHER_ARITY} == {}
    assert all(len(twice.get(name, ())) <= 2 for name in SAME_NAME_OTHER_ARITY)
    assert {"--set", "--report", "--seeds", "--executor"} <= set(lines)


def test_shared_options_read_the_same_in_every_command() -> None:
    import typer.main

    group = typer.main.get_command(cli.app)
    helps: dict[tuple[str, bool], set[str]] = {}
    for name, command in group.commands.items():
        for param in command.params:
            if param.opts[0].startswith("--") and param.opts[0] not in SAME_NAME_OTHER_ARITY:
                text = (param.help or "").replace("Also write", "Write")  # run's formats: besides its run directory
                # history's formats write the history, the other commands' a report
                helps.setdefault((param.opts[0], name == "history"), set()).add(text)
    assert {key: texts for key, texts in helps.items() if len(texts) > 1} == {}
    assert {"--set", "--report", "--seeds", "--workers", "--html"} <= {opt for opt, _ in helps}


def test_every_command_returns_an_exit_code_of_the_enum() -> None:
    import inspect
    import typing

    from normreg.errors import BisectExit, ExitCode

    for registered in cli.app.registered_commands:
        command = inspect.unwrap(registered.callback)
        returns = typing.get_type_hints(command, vars(cli))["return"]
        assert returns in (ExitCode, BisectExit), command.__name__


def _is_number(node: ast.AST | None) -> bool:
    """Whether the value of `node` may be a number written out: `3`, `1 if x else 0`, `{"pass": 0}[verdict]`."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.IfExp):
        return _is_number(node.body) or _is_number(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_is_number(v) for v in node.values)
    if isinstance(node, ast.Dict):
        return any(_is_number(v) for v in node.values)
    if isinstance(node, ast.Tuple):
        return any(_is_number(v) for v in node.elts)
    if isinstance(node, ast.BinOp):  # `128 + signum`
        return _is_number(node.left) or _is_number(node.right)
    return isinstance(node, ast.Subscript) and _is_number(node.value)


# Modules where what a function returns is an exit code (the command line, and the process that waits for it),
# and the one function there that returns other numbers: Python's own rule for `sys.exit(None | message)`.
RETURNS_EXIT_CODES = ("cli.py", "supervisor.py")
NOT_AN_EXIT_CODE = {"_status"}
EXIT_CODE_NAMES = r"\b(code|exit_code|EXIT\w*|REPORT_VERDICTS)\b"  # names that hold exit codes


def bare_exit_codes(path: Path) -> list[str]:
    """Where `path` gives an exit code as a number instead of `ExitCode`/`BisectExit`: `typer.Exit(3)`,
    `sys.exit(0)`, `note_exit(1)`, `code = 2`, `EXIT_FAIL = 1`, or a number returned by a function that returns
    an exit code (`exit_code`, one annotated `-> ExitCode`, any function of the modules that return them)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("Exit", "exit", "note_exit") and any(_is_number(a) for a in node.args):
                found.append(f"{path.name}:{node.lineno}: {called}(<number>)")
        elif isinstance(node, ast.Assign) and _is_number(node.value) and any(
                re.search(EXIT_CODE_NAMES, ast.unparse(t)) for t in node.targets):
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node.targets[0])} = <number>")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in NOT_AN_EXIT_CODE and (
                node.name == "exit_code" or path.name in RETURNS_EXIT_CODES
                or ast.unparse(node.returns or ast.Constant(None)) in ("ExitCode", "BisectExit")):
            found += [f"{path.name}:{r.lineno}: {node.name} returns a number" for r in ast.walk(node)
                      if isinstance(r, ast.Return) and _is_number(r.value)]
    return found


def test_the_exit_code_checker_finds_numbers(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    raise typer.Exit(3)\n\ndef g() -> ExitCode:\n    return 1 if x else ExitCode.PASS\n\n"
                   "class R:\n    def exit_code(self):\n        return {'pass': 0}[self.v]\n\ncode = 2\nsys.exit(0)\n"
                   "EXIT_PASS, EXIT_FAIL = 0, 1\nEXIT = {'found': 0}\ndef exit_code():\n    return 128 + signum\n"
                   "def f(x) -> int:\n    return 1 if x else 0\n")
    found = sorted(int(f.split(": ", 1)[0].split(":")[1]) for f in bare_exit_codes(bad))
    assert found == [2, 5, 9, 11, 12, 13, 14, 16]  # not 18: a number from a function that is not an exit code's
    assert [f for f in bare_exit_codes(bad.rename(tmp_path / "cli.py")) if f.startswith("cli.py:18")]


def test_no_exit_code_is_a_bare_number() -> None:
    package = Path(cli.__file__).parent
    assert [f for p in sorted(package.rglob("*.py")) for f in bare_exit_codes(p)] == []


def _raises(exc: BaseException) -> object:
    def run_suites(*args: object, **kwargs: object) -> None:
        raise exc

    return run_suites


def test_every_exit_code_the_cli_gives_is_the_enums(cli, write_suite, tmp_path: Path, monkeypatch) -> None:
    """Each way a command ends, in process, gives the enum's code; every code of the enum is given by one."""
    import signal

    from normreg import pipeline
    from normreg.errors import ExitCode
    from normreg.execution import executor
    from normreg.execution.executor import Interrupted

    suite, bad = write_suite(), Path(__file__).parent / "data" / "bad" / "misspelt_top_key.yaml"
    failing = {"merged": SAME["merged"], "twin": {"acc": [RuntimeError("boom")] * 5, "loss": [0.3] * 5}}
    seen = set()
    for args, code in [(("--version",), ExitCode.PASS), ((), ExitCode.BAD_INPUT),
                       (("run", "--bogus", suite), ExitCode.BAD_INPUT)]:
        res = cli(*args)
        assert res.exit_code == code, (args, res.output)
        seen.add(code)
    for n, (path, script, code) in enumerate([(suite, SAME, ExitCode.PASS), (suite, REGRESSION, ExitCode.FAIL),
                                              (bad, SAME, ExitCode.BAD_INPUT), (suite, failing, ExitCode.RUN_FAILED)]):
        res = cli("run", path, "--out", tmp_path / f"r{n}", "--baselines", tmp_path / "b", script=script)
        assert res.exit_code == code, (path, res.output)
        seen.add(code)
    for exc, received, code, words in [
        (ValueError("a bug"), [], ExitCode.RUN_FAILED, "InternalError: ValueError: a bug"),
        (SystemExit(0), [], ExitCode.RUN_FAILED, "called sys.exit(0)"),
        (KeyboardInterrupt(), [], ExitCode.RUN_FAILED, "user code raised KeyboardInterrupt"),
        (KeyboardInterrupt(), [signal.SIGINT], ExitCode.STOPPED_SIGINT, "stopped by SIGINT before any run"),
        (Interrupted(signal.SIGTERM, tmp_path / "kept"), [], ExitCode.STOPPED_SIGTERM, "--resume"),
    ]:
        monkeypatch.setattr(executor, "RECEIVED", received)
        monkeypatch.setattr(pipeline, "run_suites", _raises(exc))
        res = cli("run", suite, "--out", tmp_path / "ended", "--baselines", tmp_path / "b", script=SAME)
        assert res.exit_code == code and words in res.output, (exc, res.output)
        seen.add(code)
    assert seen == set(ExitCode)
