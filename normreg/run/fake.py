"""A runner that trains nothing: scripted per-seed metrics, for testing the CLI, statistics and reports.

Like a mock transport, it stands where `LightningRunner` stands. Script values per variant and metric as a list
indexed by seed position, a {seed: value} mapping, or a callable(variant, seed) -> {metric: value}; a value that is
an Exception instance makes that run fail with its message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from normreg.run.results import RunResult
from normreg.run.runner import Job, OnResult, OnStart, describe_error, result_from_metrics

Script = Mapping[str, Mapping[str, Sequence[float] | Mapping[int, float]] | BaseException]


class FakeRunner:
    """Scripted metrics instead of training. `device` is the device the runs claim to be on (it keys per-device
    baselines); "fake" unless a test plays another machine."""

    def __init__(self, script: Script | Callable[[str, int], Mapping[str, float]], device: str = "fake") -> None:
        self.script = script
        self.device = device
        self.jobs: list[Job] = []  # every job it was asked to run, in order, for assertions

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
            self.jobs.append(job)
            if on_start:
                on_start(job)
            try:
                metrics = dict(self._metrics(job))
            except Exception as e:
                on_result(RunResult(job.suite.name, job.variant, job.seed, "failed", {}, 0.0, describe_error(e)))
                continue
            on_result(result_from_metrics(job, metrics, 0.0))
