"""Executors own their options, and one `make_executor` serves every entry point: run, plan, bisect, the API and
the pytest plugin (issue 20 item 3). A recording executor registered from this file stands in for a new one."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from normreg.errors import InputError
from normreg.execution.executor import (
    EXECUTORS,
    ExecutorBase,
    ExecutorOptions,
    cli_options,
    make_executor,
    option,
    option_values,
    options_for,
    options_from_cli,
)
from normreg.execution.executors.local import LocalExecutor, LocalOptions
from normreg.execution.fake import FakeRunner

BUILT: list[Any] = []


@dataclass(frozen=True)
class RecorderOptions(ExecutorOptions):
    queue: str | None = field(default=None, metadata=option("With --executor recorder: the queue."))
    retries: int = field(default=0, metadata=option("With --executor recorder: retries.", min=0))


class Recorder(ExecutorBase):
    """A new executor in one class: its options, no context-manager code of its own; trains through a fake."""

    name = "recorder"
    trains = False
    device = "fake"
    Options = RecorderOptions

    def __init__(self, options: ExecutorOptions | None = None) -> None:
        super().__init__(options)
        self.fake = FakeRunner(lambda v, s: {"acc": 0.9 + s / 1000, "loss": 0.3})
        self.closed = False
        BUILT.append(self)

    def run(self, jobs: Any, on_result: Any, on_start: Any = None) -> None:
        self.fake.run(jobs, on_result, on_start)

    def cancel(self) -> None:
        self.fake.cancel()

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    EXECUTORS.names()
    monkeypatch.setattr(EXECUTORS, "_parts", {**EXECUTORS._parts, "recorder": Recorder})
    BUILT.clear()
    return BUILT


def test_each_executor_declares_its_options_and_the_old_flags_stay(recorder: list[Any]) -> None:
    by_flag = {o.flag: o for o in cli_options()}
    assert {"--workers", "--runs-per-gpu", "--devices", "--accelerator", "--ray-address"} <= set(by_flag)
    assert by_flag["--recorder-queue"].fields == (("recorder", "queue"),)  # a new executor's: --<name>-<field>
    assert set(by_flag["--runs-per-gpu"].fields) == {("local", "runs_per_gpu"), ("ray", "runs_per_gpu")}
    assert {n for n, _ in by_flag["--accelerator"].fields} >= {"local", "ray", "recorder"}  # common to all
    assert options_from_cli("local", {"workers": 2, "devices": "0,2"}) == LocalOptions(workers=2, devices=(0, 2))
    with pytest.raises(InputError, match="--ray-address is an option of --executor ray; this command uses "
                                         "--executor local"):
        options_from_cli("local", {"ray_address": "10.0.0.1:6379"})
    with pytest.raises(InputError, match=r"--recorder-retries: expected at least 0, got -1"):
        options_from_cli("recorder", {"recorder_retries": -1})
    with pytest.raises(InputError, match=r"the executor 'local' has no option 'queue'; its options: accelerator, "
                                         r"workers, runs_per_gpu, devices"):
        make_executor("local", {"queue": "x"})
    # the options of one executor travel as JSON (bisect's child process) and come back the same
    options = LocalOptions(workers=0, devices=(1,), accelerator="cpu")
    assert options_for("local", json.loads(json.dumps(option_values(options)))).workers == 0
    with make_executor("local", options) as ex:  # the context manager is the base class's: it closes
        assert isinstance(ex, LocalExecutor) and ex.options is options


def test_run_and_plan_build_the_chosen_executor_with_its_options(tmp_path: Path, write_suite: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from normreg import cli
    from normreg.execution.executors.ray import RayOptions

    built: list[tuple[str, Any]] = []

    def build(name: str, options: Any) -> FakeRunner:
        built.append((name, options))
        return FakeRunner(lambda v, s: {"acc": 0.9 + s / 1000, "loss": 0.3})

    monkeypatch.setattr(cli, "make_executor", build)
    suite = write_suite(seeds=3)
    res = CliRunner().invoke(cli.app, ["run", str(suite), "--executor", "ray", "--ray-address", "10.0.0.5:6379",
                                       "--accelerator", "cpu", "--out", str(tmp_path / "o"), "--baselines",
                                       str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert built[-1] == ("ray", RayOptions(accelerator="cpu", address="10.0.0.5:6379"))
    res = CliRunner().invoke(cli.app, ["plan", str(suite), "--workers", "0", "--baselines", str(tmp_path / "none"),
                                       "--pilot-seeds", "3"])
    assert res.exit_code == 0, res.output
    assert built[-1] == ("local", LocalOptions(workers=0))  # plan's pilot: no longer always the default local
    res = CliRunner().invoke(cli.app, ["plan", str(suite), "--workers", "2", "--executor", "ray"])
    assert res.exit_code == 2 and "--workers is an option of --executor local" in res.output


def test_the_api_and_bisect_child_build_executors_by_name(recorder: list[Any], tmp_path: Path,
                                                          write_suite: Any) -> None:
    import normreg.api
    from normreg.bisect import run_child

    suite = write_suite(seeds=2)
    report = normreg.api.run(suite, executor="recorder", executor_options={"queue": "api"},
                             out=tmp_path / "o", baselines=tmp_path / "b")
    assert report.exit_code == 0 and recorder[-1].options == RecorderOptions(queue="api") and recorder[-1].closed
    with pytest.raises(InputError, match="the executor 'recorder' has no option 'workers'"):
        normreg.api.run(suite, executor="recorder", workers=2, out=tmp_path / "o2")
    out = tmp_path / "child.jsonl"
    run_child({"suite": str(suite), "variant": "twin", "seeds": [0, 1], "overrides": [], "out": str(out),
               "executor": "recorder", "options": {"retries": 1}})
    assert recorder[-1].options == RecorderOptions(retries=1)
    assert [json.loads(line)["seed"] for line in out.read_text().splitlines()] == [0, 1]


def test_the_pytest_plugin_takes_the_executor_and_its_options(recorder: list[Any]) -> None:
    from normreg.pytest_plugin import executor_options

    class Config:
        def __init__(self, **given: Any) -> None:
            self.given = given

        def getoption(self, name: str) -> Any:
            return self.given[name]

    config = Config(normreg_executor="recorder", normreg_workers=None,
                    normreg_executor_option=["queue=gpu", "retries=3"])
    assert executor_options(config) == RecorderOptions(queue="gpu", retries=3)  # type: ignore[arg-type]
    # checked as on the command line: its minimum, and an option of another executor named
    below = Config(normreg_executor="recorder", normreg_workers=None, normreg_executor_option=["retries=-1"])
    with pytest.raises(InputError, match="--recorder-retries: expected at least 0, got -1"):
        executor_options(below)  # type: ignore[arg-type]
    workers = Config(normreg_executor="recorder", normreg_workers=2, normreg_executor_option=[])
    with pytest.raises(InputError, match="--workers is an option of --executor local; this command uses "
                                         "--executor recorder"):
        executor_options(workers)  # type: ignore[arg-type]
    bad = Config(normreg_executor="recorder", normreg_workers=None, normreg_executor_option=["partition=gpu"])
    with pytest.raises(InputError, match="FIELD one of the recorder executor's options: accelerator, queue, retries"):
        executor_options(bad)  # type: ignore[arg-type]
