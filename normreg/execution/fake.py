"""An executor that trains nothing: scripted per-seed metrics, for testing the CLI, statistics and reports.

Like a mock transport, it stands where the local or Ray executor stands, and says what it is: its results carry
`device="fake"` (so the report's environment does too) and `trains` is False (no model is imported, so the
up-front checks and the attached audit have nothing to look at). Script values per variant and metric as a list
indexed by seed position, a {seed: value} mapping, or a callable(variant, seed) -> {metric: value}; a value that is
an Exception instance makes that run fail with its message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from normreg.execution.executor import ExecutorBase, Job, OnResult, OnStart
from normreg.execution.failure import describe_failure
from normreg.execution.results import RunResult
from normreg.execution.worker import result_from_metrics

Script = Mapping[str, Mapping[str, Sequence[float] | Mapping[int, float]] | BaseException]


class FakeRunner(ExecutorBase):
    """Scripted results, one job after another in this process. `device` is the device the runs claim to be on
    (it keys per-device baselines): "fake" unless a test plays another machine."""

    name = "fake"
    trains = False

    def __init__(self, script: Script | Callable[[str, int], Mapping[str, float]], device: str = "fake") -> None:
        self.script = script
        self.device = device
        self.jobs: list[Job] = []  # every job it was asked to run, in order, for assertions
        self.cancelled = False
        self.closed = False

    def _metrics(self, job: Job) -> Mapping[str, float]:
        if callable(self.script):
            return self.script(job.variant, job.seed)
        entry: Any = self.script[job.variant]
        if isinstance(entry, BaseException):
            raise entry
        position = job.suite.seeds.index(job.seed) if job.seed in job.suite.seeds else job.seed
        out: dict[str, float] = {}
        for metric, values in entry.items():
            value = values[job.seed] if isinstance(values, Mapping) else values[position]
            if isinstance(value, BaseException):
                raise value
            out[metric] = float(value)
        return out

    def run(self, jobs: Sequence[Job], on_result: OnResult, on_start: OnStart | None = None) -> None:
        for job in jobs:
            if self.cancelled:
                return
            self.jobs.append(job)
            if on_start:
                on_start(job)
            on_result(self._result(job))

    def worker(self, job: Job, accelerator: str) -> RunResult:
        """The scripted result of one job, with the signature of the worker code a remote executor's task runs
        (`run_one`): give it to the Ray or Slurm executor (`worker=fake.worker`) to test all but the training."""
        return self._result(job)

    def _result(self, job: Job) -> RunResult:
        try:
            metrics = dict(self._metrics(job))
        except Exception as e:
            failure = describe_failure(e, job.suite.directory)
            return RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0, failure.description,
                             device=self.device, traceback=failure.traceback)
        return replace(result_from_metrics(job, metrics, 0.0), device=self.device)

    def cancel(self) -> None:
        self.cancelled = True

    def close(self) -> None:
        self.closed = True
