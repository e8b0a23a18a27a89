"""What a progress display hears while jobs run: each run that starts and each run that finishes."""

from __future__ import annotations

from dataclasses import dataclass

from normreg.execution.executor import Job
from normreg.execution.results import RunResult


@dataclass(frozen=True)
class Progress:
    """One event: `result` is the run that just finished, or None when `started` just began.

    `done` counts finished runs (reused ones of a resumed run included), `total` the runs planned so far (staged
    seeds add runs as stages open), `running` the runs in flight after this event.
    """

    result: RunResult | None
    done: int
    total: int
    elapsed_s: float
    running: tuple[Job, ...]
    started: Job | None = None

    @property
    def finished(self) -> bool:
        return self.result is not None
