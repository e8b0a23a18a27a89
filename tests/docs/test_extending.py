"""docs/extending.md: each worked example (a design, an executor, an audit check, an output format) is run as the
file it names and its part used, so the page cannot fall behind the interfaces it documents."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from normreg.registry import Registry
from tests.conftest import REGRESSION

ROOT = Path(__file__).parents[2]
PAGE = ROOT / "docs" / "extending.md"


def examples() -> dict[str, str]:
    """{file path: code} of every python block on the page that starts with `# normreg/....py`."""
    blocks = re.findall(r"```python\n(# (normreg/\S+\.py)\n.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    return {path: code for code, path in blocks}


def load(path: str, registry: Registry[Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run the example as the module its path names, registering into a copy of `registry` (undone after)."""
    registry.names()  # the package's own parts first
    monkeypatch.setattr(registry, "_parts", dict(registry._parts))
    name = path.removesuffix(".py").replace("/", ".")
    module = types.ModuleType(name)  # in sys.modules, as an imported file is (dataclasses look their module up)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(examples()[path], path, "exec"), module.__dict__)  # noqa: S102 - the page's own example
    return module.__dict__


def test_the_page_has_one_example_of_each_kind_of_part() -> None:
    assert sorted(examples()) == ["normreg/auditing/checks/cumulative_batchnorm.py",
                                  "normreg/execution/executors/serial.py", "normreg/judge/designs/welch_trimmed.py",
                                  "normreg/render/formats/tsv.py"]


def test_the_design_example_is_found_by_name_and_leaves_the_extreme_seed_out(monkeypatch) -> None:
    import numpy as np

    from normreg.judge.designs import DESIGNS, compare_values, get
    from normreg.suite.model import MetricSpec

    load("normreg/judge/designs/welch_trimmed.py", DESIGNS, monkeypatch)
    assert "welch_trimmed" in DESIGNS.names() and get("welch_trimmed").name == "welch_trimmed"
    spec = MetricSpec("acc", "max", 0.01)
    a = {s: 0.90 + 0.002 * (s % 3) for s in range(10)}
    b = {**{s: v - 0.03 for s, v in a.items()}, 9: 0.99}  # worse by 0.03, but one seed diverged upwards
    plain = compare_values(a, b, spec, design="welch")
    trimmed = compare_values(a, b, spec, design="welch_trimmed")
    assert (plain.n_b, trimmed.n_b) == (10, 9) and trimmed.verdict == "regressed" != plain.verdict
    # the many-samples form agrees with the one-sample form
    diff, p, _ = get("welch_trimmed").array_test(np.array([list(a.values())]), np.array([list(b.values())]), 0.01)
    assert diff[0] == pytest.approx(trimmed.diff) and p[0] == pytest.approx(trimmed.p_value)


def test_the_executor_example_is_built_by_name_and_keeps_the_contract(monkeypatch, write_suite) -> None:
    from normreg.execution import worker
    from normreg.execution.executor import EXECUTORS, Job, make_executor
    from normreg.execution.fake import FakeRunner
    from normreg.suite.spec import load_suite

    load("normreg/execution/executors/serial.py", EXECUTORS, monkeypatch)
    suite = load_suite(write_suite(seeds=2))
    fake = FakeRunner(REGRESSION)  # stands in for training: the executor's own logic is what is tested
    accelerators: list[str] = []

    def run_one(job: Job, accelerator: str) -> Any:
        accelerators.append(accelerator)
        return fake._result(job)

    monkeypatch.setattr(worker, "run_one", run_one)
    started: list[Job] = []
    results: list[Any] = []
    with make_executor("serial") as ex:
        assert ex.name == "serial" and ex.trains
        assert "cancel" not in type(ex).__dict__  # ExecutorBase's cancel, as every executor's
        ex.run([Job(suite, v, s) for s in (0, 1) for v in ("merged", "twin")], results.append, started.append)
        assert [r.metrics["acc"] for r in results] == [0.984, 0.937, 0.979, 0.915] and len(started) == 4
        assert set(accelerators) == {"cpu"}
        ex.cancel()
        ex.run([Job(suite, "merged", 0)], results.append)
        assert len(results) == 4  # cancelled: nothing more starts
    # its own option, on the command line as --serial-max-runs, reaches it
    from normreg.execution.executor import cli_options, options_from_cli

    assert "--serial-max-runs" in {o.flag for o in cli_options()}
    with make_executor("serial", options_from_cli("serial", {"serial_max_runs": 1})) as ex:
        ex.run([Job(suite, v, 0) for v in ("merged", "twin")], results.append)
    assert len(results) == 5


@pytest.mark.slow
def test_the_executor_example_trains_a_suite(tmp_path, monkeypatch) -> None:
    from normreg.execution.executor import EXECUTORS, make_executor
    from normreg.pipeline import run_suites

    load("normreg/execution/executors/serial.py", EXECUTORS, monkeypatch)
    with make_executor("serial") as ex:
        report = run_suites([ROOT / "tests" / "data" / "suites" / "tiny.yaml"], executor=ex, out=tmp_path / "r",
                            baselines=tmp_path / "b")
    assert {r.variant for r in report.runs if r.ok} >= {"a", "b"}


def test_the_audit_check_example_runs_after_the_ordered_checks(monkeypatch) -> None:
    import torch
    from torch import nn

    from normreg.auditing.checks import CHECKS, ORDER, Recordings, all_checks

    load("normreg/auditing/checks/cumulative_batchnorm.py", CHECKS, monkeypatch)
    assert [c.name for c in all_checks()] == [*ORDER, "cumulative_batchnorm"]
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None), nn.BatchNorm1d(4))
    model(torch.randn(8, 3))
    rec = Recordings("v", model, {id(m): n for n, m in model.named_modules()}, {}, {}, None, 0, lambda: None,
                     lambda: [])
    (finding,) = CHECKS.get("cumulative_batchnorm")(rec)
    assert (finding.module, finding.module_type, finding.severity) == ("1", "BatchNorm1d", "warning")
    assert finding.evidence == {"num_batches_tracked": 1}


SCRIPT = """
import sys

code = compile(open({page_code!r}).read(), "normreg/render/formats/tsv.py", "exec")
exec(code, {{"__name__": "normreg.render.formats.tsv"}})  # as if the file were in the package
from normreg.cli import app

app(sys.argv[1:])
"""


def test_the_format_example_becomes_an_option_of_run_and_report_not_history(tmp_path, cli, write_suite) -> None:
    cli("run", write_suite(), "--out", tmp_path / "run", "--baselines", tmp_path / "b", script=REGRESSION)
    (tmp_path / "tsv.py").write_text(examples()["normreg/render/formats/tsv.py"])
    (tmp_path / "go.py").write_text(textwrap.dedent(SCRIPT.format(page_code=str(tmp_path / "tsv.py"))))

    def normreg(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(tmp_path / "go.py"), *map(str, args)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin"})

    done = normreg("report", tmp_path / "run" / "report.json", "--tsv", tmp_path / "out.tsv")
    assert done.returncode == 0 and f"Wrote {tmp_path / 'out.tsv'}" in done.stdout, done.stdout + done.stderr
    rows = [line.split("\t") for line in (tmp_path / "out.tsv").read_text().splitlines()]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rows[0][:3] == ["suite", "kind", "metric"] and len(rows) == 1 + len(report["comparisons"])
    assert ["pair", "pair", "acc", "merged", "twin"] == rows[1 + [r[2] for r in rows[1:]].index("acc")][:5]
    assert "--tsv FILE.tsv" in normreg("run", "--help").stdout
    history = normreg("history", "--help").stdout
    assert "--html" in history and "--tsv" not in history
