"""A pytest plugin: `pytest --normreg suites/` collects each suite's checks as test items.

Registered as the `pytest11` entry point `normreg`, so installing normreg is enough; without `--normreg` it does
nothing. Each suite file becomes a collector whose items are its checks: `pair[variant-metric]` for every
variant against the reference, `baseline[variant-metric]` where a baseline is stored, and `runs` for the training
runs themselves. The suite trains once, when its first item runs; each item then reports its check's verdict as
its outcome: a failing check fails with its row of the verdict table, the reason and the numbers, a known bug
caught as declared is an xfail, the rest pass.

Each check is its own item everywhere pytest names one: the failure header reads `suite::pair[twin-acc]` (the
suite's name and the check), `-k twin`, `--lf` and `--junitxml` see one test per check.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from normreg.execution.executor import ExecutorOptions, make_executor  # make_executor: tests put a fake one here


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("normreg", "normreg regression suites")
    group.addoption("--normreg", action="store_true", default=False,
                    help="collect normreg suite files (*.yaml with metrics and variants) as tests")
    group.addoption("--normreg-baselines", default="baselines", metavar="DIR",
                    help="folder of stored normreg baselines (default: baselines)")
    group.addoption("--normreg-workers", type=int, default=None, metavar="N",
                    help="training worker processes (default: one per GPU, else one per core)")
    group.addoption("--normreg-out", default=None, metavar="DIR",
                    help="run directory (default: runs/<timestamp>)")
    group.addoption("--normreg-executor", default="local", metavar="NAME",
                    help="what trains the suites: an executor by name, as `normreg run --executor` (default: local)")
    group.addoption("--normreg-executor-option", action="append", default=[], metavar="FIELD=VALUE",
                    help="one of the executor's options by its field name, e.g. partition=gpu (repeatable)")


def executor_options(config: pytest.Config) -> ExecutorOptions:
    """The executor's options from `--normreg-workers` and each `--normreg-executor-option FIELD=VALUE`, parsed and
    checked as `normreg run` parses and checks the same option (`options_from_cli`)."""
    from normreg.errors import InputError
    from normreg.execution.executor import cli_options, options_from_cli

    name = config.getoption("normreg_executor")
    by_field = {f: o for o in cli_options() for n, f in o.fields if n == name}
    given: dict[str, Any] = {"workers": config.getoption("normreg_workers")}  # None: not given
    for text in config.getoption("normreg_executor_option"):
        key, sep, value = text.partition("=")
        opt = by_field.get(key.strip())
        if not sep or opt is None:
            raise InputError(f"--normreg-executor-option {text!r}: expected FIELD=VALUE with FIELD one of the "
                             f"{name} executor's options: {', '.join(by_field)}")
        try:
            given[opt.param] = value if opt.parse else opt.kind(value)  # options_from_cli parses the rest
        except ValueError as e:
            raise InputError(f"--normreg-executor-option {text!r}: {e}") from None
    return options_from_cli(name, given)


def _is_suite(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "variants" in data and "metrics" in data


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if not parent.config.getoption("normreg") or file_path.suffix not in (".yaml", ".yml"):
        return None
    return SuiteFile.from_parent(parent, path=file_path) if _is_suite(file_path) else None


class NormregCheckFailed(Exception):
    """A check of a suite failed; the message holds its numbers."""


class SuiteFile(pytest.File):
    """One suite: collects its checks and trains it, once, when the first of them runs."""

    _report: Any = None
    suite_name = ""

    def collect(self) -> Iterator[pytest.Item]:
        from normreg.judge.baseline import baseline_path
        from normreg.suite.spec import load_suite

        suite = load_suite(self.path)
        self.suite_name = suite.name
        baselines = Path(self.config.getoption("normreg_baselines"))
        stored = baseline_path(baselines, suite.name).exists()
        yield self._item("runs", kind="runs", variant="", metric="")
        for v in suite.variants:
            for m in suite.metrics:
                if v.name != suite.reference:
                    yield self._item(f"pair[{v.name}-{m.name}]", kind="pair", variant=v.name, metric=m.name)
                if stored:
                    yield self._item(f"baseline[{v.name}-{m.name}]", kind="baseline", variant=v.name,
                                     metric=m.name)

    def _item(self, name: str, **check: str) -> CheckItem:
        # The node id is given as text, which pytest parses as it parses the ids `--lf` reads back from its cache
        # (`pair[twin-acc]`: the name `pair`, the parameters `twin-acc`); derived from the name it would not
        # match them, and `--lf` would rerun everything.
        return CheckItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", **check)

    def report(self) -> Any:
        if self._report is None:
            from normreg.pipeline import run_suites

            config = self.config
            out = config.getoption("normreg_out")
            # None: run_suites makes runs/<timestamp> itself, and removes it when nothing trained
            out_dir = Path(out) / self.path.stem if out else None
            with make_executor(config.getoption("normreg_executor"), executor_options(config)) as executor:
                self._report = run_suites([self.path], executor=executor, out=out_dir,
                                          baselines=Path(config.getoption("normreg_baselines")))
        return self._report


class CheckItem(pytest.Item):
    def __init__(self, *, kind: str, variant: str, metric: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind, self.variant, self.metric = kind, variant, metric

    def runtest(self) -> None:
        from normreg.render.junit import numbers
        from normreg.render.labels import problem_message
        from normreg.render.terminal import render_table

        report = self.parent.report()  # type: ignore[attr-defined]
        if self.kind == "runs":
            failed = [p for p in report.problems if p.kind == "run_failed" and not p.expected]
            if failed:
                raise NormregCheckFailed("\n".join(f"{p.suite}/{p.variant}: {problem_message(p)}" for p in failed))
            return
        found = [c for c in report.checks if c.kind == self.kind and c.comparison.b == self.variant
                 and c.comparison.metric == self.metric]
        if not found:
            pytest.skip(f"no {self.kind} check of {self.variant} on {self.metric} (no values to compare)")
        check = found[0]
        c = check.comparison
        detail = f"{c.metric} ({c.goal} is better): {c.reason}\n{numbers(check)}"
        if check.failed:
            expected = f" (expected {check.expected})" if check.expected else ""
            raise NormregCheckFailed(f"{c.verdict}{expected}: {detail}\n\n{render_table([check])}")
        if check.expected_failure:
            pytest.xfail(f"{c.verdict} (expected): {detail}")

    def reportinfo(self) -> tuple[Path, None, str]:
        # pytest heads a failure with this third field, and with "test session" when it is empty
        return self.path, None, f"{self.parent.suite_name or self.path.stem}::{self.name}"  # type: ignore[attr-defined]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, NormregCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)  # type: ignore[arg-type]
