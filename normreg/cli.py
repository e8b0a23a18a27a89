"""The command line: parse arguments, call one library function, render, map the outcome to an exit code.

Exit codes are `normreg.errors.ExitCode`: 0 nothing failed; 1 a regression or a non-equivalent pair; 2 bad input;
3 a training run failed (or normreg itself could not finish); 130 and 143 stopped by a signal (`bisect` has its
own, `BisectExit`). The only module that imports typer; library imports stay inside commands so that light
commands start fast.

Each command is a plain function that returns its exit code; `_exits` makes it one that exits with it, and
with the error's code for every error it raises. An option more than one command takes is declared once, as a
typed alias below (`SuiteOverrides`, `ReportOut`, ...), so it has one spelling and one help text everywhere.
"""

from __future__ import annotations

import functools
import inspect
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from typer.core import TyperGroup

try:  # typer vendors click from 0.2x on; older versions use click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

from normreg.choices import DEFAULT_DESIGN, DESIGNS
from normreg.errors import BisectExit, ExitCode, InputError, NormregError, printable
from normreg.execution.executor import executor_names, make_executor  # tests put a fake in make_executor
from normreg.execution.supervisor import resume_command

if TYPE_CHECKING:
    from normreg.auditing.findings import AuditReport
    from normreg.render.progress import Display
    from normreg.report.model import Report
    from normreg.suite.model import Seeds, Suite


class _OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a bad option value) as one line with the help hint, like every other
    error, instead of click's boxed multi-line panel."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as e:
            typer.echo(e.format_message())
            code = ExitCode.BAD_INPUT
        except click_errors.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "normreg"
            message = " ".join(e.format_message().split())
            typer.echo(f"UsageError: {message} (see '{where} --help')", err=True)
            code = ExitCode.BAD_INPUT
        except click_errors.ClickException as e:
            typer.echo(f"{type(e).__name__}: {' '.join(e.format_message().split())}", err=True)
            code = e.exit_code  # click's own (no option here is a click file, so none is raised today)
        except typer.Abort:  # click's answer to a Ctrl-C while it parses the arguments, as click exits it
            typer.echo("Aborted.", err=True)
            code = ExitCode.FAIL
        sys.exit(code if isinstance(code, int) else ExitCode.PASS)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  cls=_OneLineErrors,
                  help="normreg: regression tests for ML implementations that should be equivalent.")
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        import normreg

        typer.echo(f"normreg {normreg.__version__}")
        raise typer.Exit(ExitCode.PASS)


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks: of an error, and of each failed run "
                                              "as it fails.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print normreg's version and exit.")] = False) -> None:
    _state["debug"] = debug


# ------------------------------------------------------------------------------------ outcomes to exit codes

def _exits(command: Callable[..., int]) -> Callable[..., None]:
    """A command from a function that returns its exit code: the command exits with that code, and with the
    error's own (`_exit_code_of`) when the function raises."""

    @functools.wraps(command)
    def exiting(**options: Any) -> None:
        try:
            code = command(**options)
        except typer.Exit:
            raise
        except (Exception, KeyboardInterrupt, SystemExit) as e:  # every way a command can end has its exit code
            raise typer.Exit(_exit_code_of(e)) from None
        raise typer.Exit(code)

    return exiting


def _exit_code_of(exc: Exception | KeyboardInterrupt | SystemExit) -> ExitCode:
    """Say what ended a command, in one line on stderr (with the traceback under --debug), and its exit code."""
    from normreg.execution.executor import RECEIVED, Interrupted

    if isinstance(exc, KeyboardInterrupt) and RECEIVED:  # a stop outside training (Interrupted covers training)
        exc = Interrupted(RECEIVED[0])  # before the run directory was held: nothing was kept
    if isinstance(exc, Interrupted):
        typer.echo(f"Interrupted: {exc}", err=True)
        if exc.run_dir is not None:
            typer.echo(f"Continue with: {resume_command(exc.run_dir)}", err=True)
        return exc.exit_code
    if _state["debug"]:
        traceback.print_exception(exc)
    if isinstance(exc, NormregError):
        # one line, whatever a file or a name held (a newline in a CSV's variant, a control character)
        typer.echo(f"{type(exc).__name__}: {printable(str(exc))}", err=True)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):  # no signal caused it: user code raised it (at import, in `__init__`)
        from normreg.execution.failure import describe_error

        typer.echo(f"RunError: user code raised {describe_error(exc)} outside a training run; normreg did not "
                   "finish", err=True)
    elif isinstance(exc, SystemExit):
        # Only user code calls sys.exit (the library never does): exit 0 must mean that every check ran.
        typer.echo(f"RunError: code outside a training run called sys.exit({exc.code!r}); normreg did not finish",
                   err=True)
    else:
        typer.echo(f"InternalError: {type(exc).__name__}: {exc}\nThis is a bug in normreg; rerun with --debug "
                   "for the traceback and report it.", err=True)
    return ExitCode.RUN_FAILED


# ------------------------------------------------------------------- options that more than one command takes

def _output_path(text: str) -> Path:
    """An output path as given: an empty one (`--out ""`) would silently mean the working directory."""
    if not text.strip():
        raise typer.BadParameter("an empty path; give a file or folder name")
    return Path(text)


OUTPUT = {"parser": _output_path, "metavar": "PATH"}  # every output option parses its path with this

SuiteOverrides = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a suite key, e.g. trainer.max_epochs=2 (repeatable).")]
ReportOut = Annotated[Optional[Path], typer.Option("--report", help="Write the JSON report here.", **OUTPUT)]
SeedCount = Annotated[Optional[str], typer.Option(
    "--seeds", help="How many seeds each variant (bisect: each commit) runs, or is calibrated for: N (seeds "
    "0..N-1), or 'auto' (in stages until each verdict is decisive); default: the suite's, else the report's.")]
Baselines = Annotated[Path, typer.Option("--baselines", help="Folder of stored baselines.")]
Alpha = Annotated[Optional[float], typer.Option(
    "--alpha", help="Significance level (default: the suite's or the files', else 0.05).")]
MinEffect = Annotated[Optional[float], typer.Option(
    "--min-effect", help="Smallest difference that matters, and the shift power is computed for (default: the "
    "files' min_effect).")]
DesignName = Annotated[Optional[str], typer.Option(
    "--design", help=f"The statistical test: {', '.join(DESIGNS)} (calibrate's default: the suite's).")]
VariantName = Annotated[Optional[str], typer.Option("--variant", help="The variant (default: the suite's "
                                                   "reference).")]
SeedValue = Annotated[Optional[int], typer.Option("--seed", min=0, max=2**32 - 1, help="The seed (default: the "
                                                  "suite's first).")]


def _format_options(what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command one `--NAME FILE.suffix` option per registered output format (normreg/render/formats/),
    made from the registry; the command receives the ones given as `outputs`, {format name: path}."""
    from normreg.render.outputs import formats_for

    def option(f: Any) -> inspect.Parameter:
        verb = "Also write" if what == "run" else "Write"
        text = f"Write {f.history}." if what == "history" else f"{verb} {f.describes} here."
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
            Optional[Path], typer.Option(f"--{f.name}", parser=OUTPUT["parser"], metavar=f"FILE{f.suffix}",
                                         help=text)])

    made = [option(f) for f in formats_for("history" if what == "history" else "report")]

    def add(command: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(command)
        def with_outputs(**options: Any) -> None:
            given = {p.name: options.pop(p.name, None) for p in made}
            command(**options, outputs={name: path for name, path in given.items() if path is not None})

        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "outputs"]
        with_outputs.__signature__ = inspect.Signature([*own, *made])  # type: ignore[attr-defined]
        return with_outputs

    return add


def _executor_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command `--executor NAME` and every executor's own options, made from the executors' `Options`
    dataclasses (normreg/execution/executors/), as output formats give theirs; the command receives the name as
    `executor` and the options given as `executor_options` ({param: value}), for `options_from_cli`."""
    from normreg.execution.executor import cli_options

    made = [inspect.Parameter(o.param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[
        Optional[o.kind], typer.Option(o.flag, help=o.help, min=o.min, metavar=o.metavar)])  # type: ignore[valid-type]
        for o in cli_options()]
    name = inspect.Parameter("executor", inspect.Parameter.KEYWORD_ONLY, default="local", annotation=Annotated[
        str, typer.Option("--executor", help=f"What runs the training jobs: {' or '.join(executor_names())} "
                                       "(local: worker processes on this machine).")])

    @functools.wraps(command)
    def with_executor(**options: Any) -> None:
        given = {p.name: options.pop(p.name) for p in made if options.get(p.name) is not None}
        for p in made:
            options.pop(p.name, None)
        command(**options, executor_options=given)

    own = [p for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name not in ("executor", "executor_options")]
    with_executor.__signature__ = inspect.Signature([*own, name, *made])  # type: ignore[attr-defined]
    return with_executor


def _seeds_option(text: Optional[str]) -> Seeds:
    from normreg.suite.model import MAX_SEEDS

    if text is None or text == "auto":
        return "auto" if text else None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_SEEDS:
        raise InputError(f"expected --seeds N (a whole number from 1 to {MAX_SEEDS}) or --seeds auto, got {text!r}")
    return n


# ---------------------------------------------------------------------------------------- what commands share

def _progress() -> Display:
    from normreg.render.progress import progress_display

    return progress_display(tracebacks=_state["debug"])


def _emit(report: Report | AuditReport, report_path: Path | None) -> ExitCode:
    """Write the JSON report where asked, print the terminal rendering (and where the report went), exit as the
    report says."""
    from normreg.auditing.findings import AuditReport
    from normreg.render.audit import render_audit
    from normreg.render.terminal import render

    if report_path is not None:
        report.write(report_path)
    typer.echo(render_audit(report) if isinstance(report, AuditReport) else render(report))
    if report_path is not None:
        typer.echo(f"Report: {report_path}")
    return report.exit_code


def _write_formats(report: Report, outputs: dict[str, Path] | None) -> None:
    from normreg.render.outputs import write_outputs

    for path in write_outputs(report, outputs or {}):
        typer.echo(f"Wrote {path}")


# ------------------------------------------------------------------------------------------------ normreg run

@app.command()
@_executor_options
@_format_options("run")
@_exits
def run(
    suites: Annotated[list[Path], typer.Argument(help="Suite files, or folders of them.")],
    seeds: SeedCount = None,
    out: Annotated[Optional[Path], typer.Option(help="Run directory (default: runs/<timestamp>).",
                                                **OUTPUT)] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="RUN_DIR", help="Continue an interrupted run in its "
                                                   "directory: reuse its finished runs, run the failed and "
                                                   "missing ones, judge all together.")] = None,
    report: ReportOut = None,
    baselines: Baselines = Path("baselines"),
    update_baseline: Annotated[bool, typer.Option("--update-baseline", help="Store this run's values as the "
                                                  "suites' baselines.")] = False,
    baseline_key: Annotated[Optional[str], typer.Option(help="Keep one baseline per device class: 'device' "
                                                        "reads and writes baselines/<suite>@<device-class>.json "
                                                        "('none': the plain one; default: the suite's "
                                                        "baseline_key).")] = None,
    set_: SuiteOverrides = None,
    ignore_expect: Annotated[bool, typer.Option("--ignore-expect", help="Judge known bugs like any other "
                                                "variant: fail on them.")] = False,
    run_timeout: Annotated[Optional[str], typer.Option(metavar="DURATION", help="End a run that takes longer "
                                                       "(e.g. 600, 90s, 30m, 2h) and record it failed; the others "
                                                       "go on (default: each suite's run_timeout, else "
                                                       "none).")] = None,
    outputs: Optional[dict[str, Path]] = None,  # --html, --markdown, --junit: one option per output format
    executor: str = "local",  # --executor, and each executor's own options (--workers, --ray-address, ...)
    executor_options: Optional[dict[str, Any]] = None,
) -> ExitCode:
    """Train every variant of each suite across seeds and judge pairs and baselines."""
    _check_run_outputs(suites, baselines, out, {"--report": report, **{f"--{n}": p for n, p in
                                                                       (outputs or {}).items()}})
    loaded = _load_run_suites(suites, set_ or (), _seeds_option(seeds), run_timeout)
    result, run_dir = _train(loaded, executor, executor_options or {}, out=out, resume=resume, baselines=baselines,
                             update_baseline=update_baseline, ignore_expect=ignore_expect, baseline_key=baseline_key)
    return _finish_run(result, run_dir, report, outputs or {})


def _check_run_outputs(suites: list[Path], baselines: Path, out: Path | None, files: dict[str, Path | None]) -> None:
    """No output may replace an input: a suite, a baseline, a file the run reads. Checked before anything else."""
    from normreg.fileio import check_output_folder, check_outputs
    from normreg.render.outputs import option_suffixes
    from normreg.suite.spec import discover

    read = [*discover(suites), *suites, baselines]
    folders = {p: (".yaml", ".yml") for p in suites if p.is_dir()} | {baselines: (".json",)}
    check_outputs(files, inputs=read, reads=folders, suffixes=option_suffixes())
    if out is not None:
        check_output_folder(out, "--out", inputs=read)


def _load_run_suites(suites: list[Path], overrides: tuple[str, ...] | list[str], seeds: Seeds,
                     run_timeout: str | None) -> list[Suite]:
    """The suites as `run` takes them, with --run-timeout applied. A bad suite is refused here, in well under a
    second: before the statistics (scipy) and the checks (torch, Lightning) are imported."""
    import dataclasses

    from normreg.suite.building import parse_duration
    from normreg.suite.spec import load_suites

    loaded = load_suites(suites, overrides, seeds)
    if run_timeout is None:
        return loaded
    try:
        limit = parse_duration(run_timeout)
    except ValueError as e:
        raise InputError(f"--run-timeout: {e}") from None
    return [dataclasses.replace(s, run_timeout=limit) for s in loaded]


def _train(loaded: list[Suite], executor: str, executor_options: dict[str, Any],
           **settings: Any) -> tuple[Report, Path]:
    """Train and judge the suites on the executor named, with a progress display (on a terminal, a status line
    from now on: the checks before training take seconds); the report and the run directory."""
    from normreg.execution.executor import options_from_cli
    from normreg.pipeline import run_suites

    held: list[Path] = []
    options = options_from_cli(executor, executor_options)
    display = _progress()

    def checked(run_dir: Path) -> None:  # the first line in a log: everything loaded and checked, runs start
        held.append(run_dir)
        display.note(f"Checked every suite; training into {run_dir}")

    try:
        with make_executor(executor, options) as ex:
            result = run_suites(loaded, executor=ex, progress=display, on_run_dir=checked, on_note=display.note,
                                **settings)
    finally:
        display.close()
    return result, held[0]


def _finish_run(result: Report, run_dir: Path, report: Path | None, outputs: dict[str, Path]) -> ExitCode:
    """Print the verdicts and write the files asked for. Everything trained: a file that cannot be written (a
    full disk) must not lose the verdicts, so they are printed whatever fails, and the run exits 3."""
    from normreg.render.terminal import render

    typer.echo(f"Run directory: {run_dir}")
    kept = sorted({r.suite for r in result.runs if r.traceback})
    if kept:
        typer.echo("Tracebacks of the failed runs: " + ", ".join(str(run_dir / k / "failures") for k in kept))
    failed = [p.message for p in result.problems if p.kind == "write_failed"]
    wrote = False
    if report is not None:
        try:
            result.write(report)
            wrote = True
        except OSError as e:
            failed.append(f"could not write {report}: {e.strerror or e}")
    typer.echo(render(result))
    if wrote:
        typer.echo(f"Report: {report}")
    if outputs:
        try:
            _write_formats(result, outputs)
        except OSError as e:
            failed.append(f"could not write {e.filename or 'an output file'}: {e.strerror or e}")
    if failed:
        typer.echo(f"RunError: {'; '.join(failed)}; the verdicts above are complete", err=True)
        return ExitCode.RUN_FAILED
    return result.exit_code


# --------------------------------------------------------------------------------------------- other commands

@app.command()
@_exits
def compare(
    a: Annotated[str, typer.Argument(help="Reference: a report, run directory, baseline or tidy CSV "
                                          "[#variant].")],
    b: Annotated[str, typer.Argument(help="Candidate, same forms as A.")],
    metric: Annotated[Optional[list[str]], typer.Option(help="Compare only this metric (repeatable).")] = None,
    alpha: Alpha = None,
    goal: Annotated[Optional[str], typer.Option(help="max or min, when the files do not say.")] = None,
    min_effect: MinEffect = None,
    mode: Annotated[str, typer.Option(help="pair: any significant difference fails; baseline: only a "
                                           "regression fails.")] = "pair",
    report: ReportOut = None,
    design: DesignName = DEFAULT_DESIGN,
    correction: Annotated[str, typer.Option(help="holm, bonferroni or none, across all comparisons.")] = "holm",
    curve: Annotated[Optional[list[str]], typer.Option(help="Compare this per-epoch metric's learning curves, "
                                                       "epoch by epoch (repeatable; default: the curves the "
                                                       "files' suites declare).")] = None,
) -> ExitCode:
    """Verdicts between two existing result sets (the statistical test: --design); trains nothing."""
    from normreg.comparison import compare as do_compare
    from normreg.fileio import check_outputs

    check_outputs({"--report": report}, inputs=[Path(spec.partition("#")[0]) for spec in (a, b)])
    result = do_compare(a, b, metrics=tuple(metric or ()), alpha=alpha, goal=goal, min_effect=min_effect,
                        mode=mode, design=design, correction=correction, curves=tuple(curve or ()))
    return _emit(result, report)


@app.command()
@_executor_options
@_exits
def plan(
    suite: Annotated[Path, typer.Argument(help="The suite file to plan.")],
    pilot: Annotated[Optional[str], typer.Option(help="Per-seed values to take spreads from: a report, baseline, "
                                                 "run directory or tidy CSV (default: the stored baseline, else "
                                                 "a short pilot run).")] = None,
    baselines: Baselines = Path("baselines"),
    pilot_seeds: Annotated[int, typer.Option(min=2, max=1000, help="Seeds of the pilot run, when one is needed.")] = 3,
    set_: SuiteOverrides = None,
    executor: str = "local",  # --executor and each executor's own options: what trains a pilot run
    executor_options: Optional[dict[str, Any]] = None,
) -> ExitCode:
    """Seeds per side for an 80% and a 90% chance that a true difference of 2 x min_effect is reported regressed,
    on average over the true spreads the pilot leaves possible, and how sure that is."""
    from normreg.execution.executor import options_from_cli
    from normreg.pipeline import pilot_run
    from normreg.planning import plan_suite
    from normreg.render.planning import render_plan

    display = _progress()
    options = options_from_cli(executor, executor_options or {})

    def announce(out_dir: Path) -> None:
        display.note(f"No pilot given and no stored baseline: running a {pilot_seeds}-seed pilot in {out_dir}")

    try:
        with make_executor(executor, options) as ex:
            run_pilot = pilot_run(executor=ex, baselines=baselines, overrides=set_ or (), progress=display,
                                  on_start=announce)
            p = plan_suite(suite, pilot=pilot, baselines=baselines, pilot_seeds=pilot_seeds,
                           overrides=set_ or (), run_pilot=run_pilot)
    finally:
        display.close()
    typer.echo(render_plan(p))
    return ExitCode.PASS


@app.command("report")
@_format_options("report")
@_exits
def report_cmd(
    report_file: Annotated[Path, typer.Argument(metavar="REPORT.json", help="A report written by 'normreg run' "
                                                "or 'normreg compare'.")],
    outputs: Optional[dict[str, Path]] = None,  # --html, --markdown, --junit: one option per output format
) -> ExitCode:
    """Show a stored report and write it as HTML, Markdown or JUnit XML; re-runs nothing (exit 0 unless unreadable)."""
    from normreg.fileio import check_outputs
    from normreg.render.outputs import option_suffixes
    from normreg.render.terminal import render
    from normreg.report.file import read_report

    check_outputs({f"--{n}": p for n, p in (outputs or {}).items()},
                  inputs=[report_file, report_file / "report.json"], suffixes=option_suffixes())
    source = read_report(report_file)
    typer.echo(render(source.report))
    _write_formats(source.report, outputs)
    return ExitCode.PASS


@app.command()
@_exits
def calibrate(
    source: Annotated[str, typer.Argument(help="A report, baseline, run directory or tidy CSV [#variant].")],
    suite: Annotated[Optional[Path], typer.Option(help="Take seeds, test and min_effect from this suite.")] = None,
    seeds: SeedCount = None,
    alpha: Alpha = None,
    design: DesignName = None,
    min_effect: MinEffect = None,
    reps: Annotated[int, typer.Option(min=100, help="Resampled comparisons per metric.")] = 2000,
    random_seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seed of the resampling.")] = 0,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when a rate is poor.")] = False,
) -> ExitCode:
    """Resample observed per-seed values to estimate this suite's false-alarm rate and power."""
    from normreg.choices import check_alpha, check_min_effect
    from normreg.planning import calibrate_source
    from normreg.render.planning import render_calibration

    check_alpha(alpha)
    check_min_effect(min_effect)

    result = calibrate_source(source, suite=suite, seeds=_seeds_option(seeds), alpha=alpha, design=design,
                              min_effect=min_effect, reps=reps, random_seed=random_seed)
    typer.echo(render_calibration(result))
    return ExitCode.FAIL if strict and result.poor else ExitCode.PASS


@app.command("history")
@_format_options("history")
@_exits
def history_cmd(
    paths: Annotated[list[Path], typer.Argument(metavar="DIR_OR_REPORTS...", help="Report JSON files, or folders "
                                                "searched for them.")],
    fail_on_change: Annotated[Optional[int], typer.Option(min=1, metavar="N", help="Exit 1 when a series' newest "
                                                          "change is a regression within the last N nights.")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Keep reports whose suite differs from its newest "
                                           "report's (ad-hoc runs, or the suite before an edit), marked; by "
                                           "default they are left out and listed.")] = False,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="FILE.json", help="Write the history as "
                                                     "JSON (schema normreg.history/1): nights, values, changes with "
                                                     "their evidence and environment changes.")] = None,
    outputs: Optional[dict[str, Path]] = None,  # --html, --markdown: the output formats with a history form
) -> ExitCode:
    """Each variant's metrics across a series of reports, by date: failed nights, and the nights they changed."""
    from normreg.fileio import check_outputs
    from normreg.render.history import environment_text, render_history
    from normreg.render.outputs import option_suffixes, write_history_outputs
    from normreg.report.history import load_history

    # every .json file under a folder given is read as a report: an output there would be read next time
    check_outputs({f"--{n}": p for n, p in (outputs or {}).items()} | {"--json": json_out}, inputs=paths,
                  reads={p: (".json",) for p in paths if p.is_dir()}, suffixes=option_suffixes())
    history = load_history(paths, include_other_suites=all_runs)
    typer.echo(render_history(history))
    for path in write_history_outputs(history, outputs or {}):
        typer.echo(f"Wrote {path}")
    if json_out is not None:  # the history's data, not a rendering: beside the registered formats
        from normreg.fileio import write_json_atomic

        write_json_atomic(json_out, history.to_json())
        typer.echo(f"Wrote {json_out}")
    if fail_on_change is None:
        return ExitCode.PASS
    recent = history.recent_regressions(fail_on_change)
    for s, c in recent:
        typer.echo(f"Regression within the last {fail_on_change} nights: {s.suite} {s.metric} {s.variant} "
                   f"from {history.nights[c.night].label}" + (f" ({environment_text(c)})" if c.environment else ""))
    return ExitCode.FAIL if recent else ExitCode.PASS


@app.command("bisect")
@_executor_options
@_exits
def bisect_cmd(
    suite: Annotated[Path, typer.Argument(help="A suite file inside a git repository.")],
    good: Annotated[str, typer.Option(help="A commit where the variant was fine.")],
    bad: Annotated[str, typer.Option(help="A later commit where it regressed.")],
    variant: VariantName = None,
    metric: Annotated[Optional[str], typer.Option(help="The metric to judge (default: the suite's first).")] = None,
    seeds: SeedCount = None,
    cache: Annotated[Optional[Path], typer.Option(help="Folder of cached runs (default: "
                                                  "~/.cache/normreg/bisect).")] = None,
    report: ReportOut = None,
    set_: SuiteOverrides = None,
    executor: str = "local",  # --executor and each executor's own options: what trains each commit's runs
    executor_options: Optional[dict[str, Any]] = None,
) -> BisectExit:
    """Binary-search git history for the first commit where a variant regressed; 0 found, 1 not worse, 3 undecided."""
    from normreg.bisect import bisect
    from normreg.execution.executor import options_from_cli
    from normreg.fileio import check_outputs
    from normreg.render.bisect import render_bisect, render_step

    check_outputs({"--report": report}, inputs=[suite])
    options = options_from_cli(executor, executor_options or {})
    result = bisect(suite, good, bad, variant=variant, metric=metric, seeds=_seeds_option(seeds), cache=cache,
                    overrides=set_ or (), executor=executor, executor_options=options,
                    on_step=lambda s: typer.echo(render_step(s)))
    typer.echo(render_bisect(result))
    if report is not None:
        result.write(report)
        typer.echo(f"Report: {report}")
    return result.exit_code


@app.command()
@_exits
def audit(
    suite: Annotated[Path, typer.Argument(help="A suite file.")],
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="Audit only this variant (and the "
                                                         "reference); repeatable.")] = None,
    report: ReportOut = None,
    seed: SeedValue = None,
    set_: SuiteOverrides = None,
) -> ExitCode:
    """Find BatchNorm traps in a suite's models in seconds, without training; exit 1 on an error finding."""
    from normreg.auditing import audit_suite
    from normreg.fileio import check_outputs

    check_outputs({"--report": report}, inputs=[suite])
    return _emit(audit_suite(suite, variants=tuple(variant or ()), seed=seed, overrides=set_ or ()), report)


@app.command()
@_exits
def repro(
    suite: Annotated[Path, typer.Argument(help="A suite file.")],
    variant: VariantName = None,
    seed: SeedValue = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the script here (default: "
                                                   "print it).", **OUTPUT)] = None,
    set_: SuiteOverrides = None,
) -> ExitCode:
    """Write one (variant, seed) run as a standalone Python script, without normreg, printing the same values."""
    from normreg.execution.repro import repro_script
    from normreg.fileio import check_outputs, write_text_atomic
    from normreg.suite.spec import load_suite

    check_outputs({"--output": output}, inputs=[suite])
    loaded = load_suite(suite, set_ or ())
    text = repro_script(loaded, variant or loaded.reference, loaded.seeds[0] if seed is None else seed)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(output, text)
        typer.echo(f"Wrote {output}; run it with: python {output}", err=True)
    return ExitCode.PASS


def main() -> None:
    """The command line (the console script starts in normreg.__main__.main, which comes here). Commands
    that run user code run in a second process that user code cannot end unnoticed (normreg/execution/supervisor.py):
    the first only waits for its verdict. A command that imported torch
    (run, audit, bisect, calibrate) leaves without the interpreter's teardown once it has finished: every exit
    handler runs and the output is flushed, but torch and Lightning are not torn down module by module, which took
    2.1 s of the flagship's wall time on 2 cores and does nothing a user needs. Everything else exits as usual."""
    from normreg.execution import supervised, supervisor
    from normreg.execution.executor import stop_on_signals

    if supervisor.wanted(sys.argv[1:]):
        sys.exit(supervisor.supervise(sys.argv[1:]))
    supervised.adopt_pipe()
    _forgiving_stdout()
    stop_on_signals()
    try:
        app()  # typer ends every command with SystemExit, its exit status
    except SystemExit as e:
        supervised.note_exit(_status(e.code))
        if "torch" not in sys.modules:
            raise
        _leave(e.code)


class _Forgiving:
    """stdout whose reader went away (a closed pipe, `normreg run ... | head -1`) or that cannot be written (a full
    disk, /dev/full): the reader's problem, not normreg's. What would have been printed is dropped (the stream is
    pointed at the null device), and the command carries on to its own exit code: a run keeps training and
    writes its run directory."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._gone()

    def _gone(self) -> None:
        import os

        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
            self._stream.flush()  # what was buffered goes to the null device
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _forgiving_stdout() -> None:
    if sys.stdout is not None and not isinstance(sys.stdout, _Forgiving):
        sys.stdout = _Forgiving(sys.stdout)  # type: ignore[assignment]


def _status(code: object) -> int:
    """The exit status `sys.exit(code)` gives."""
    if code is None:
        return 0
    return code & 0xFF if isinstance(code, int) else 1


def _leave(code: object) -> None:
    """Exit with `code` as `sys.exit` would (None is 0, a message is printed and exits 1), after the exit
    handlers and with the output flushed, but skipping the interpreter's teardown."""
    import atexit
    import os

    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
    status = _status(code)
    atexit._run_exitfuncs()  # logging's flush, temporary folders, multiprocessing's clean-up
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing left to flush into
            pass
    os._exit(status)  # as the shell sees sys.exit(-1): 255


if __name__ == "__main__":
    main()
