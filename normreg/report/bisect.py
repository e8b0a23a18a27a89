"""The bisect report: each commit looked at (`Step`) and the outcome (`BisectResult`), as `normreg bisect` returns
them and writes them (`"schema": "normreg.bisect/1"`); the search itself is `normreg.bisect`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normreg.errors import BisectExit
from normreg.fileio import clean_json, write_json_atomic
from normreg.judge.stats import Comparison, as_record

SCHEMA = "normreg.bisect/1"


@dataclass(frozen=True)
class Step:
    """One commit looked at: its runs' values of the metric, the comparison with the good commit, the decision.

    `status` is "good", "bad" or "skip"; `role` is "good", "bad" (the two ends) or "step" (a search step).
    """

    role: str
    commit: str
    subject: str
    status: str
    values: Mapping[int, float]
    comparison: Comparison | None
    reason: str
    trained: int
    cached: int

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "commit": self.commit, "subject": self.subject, "status": self.status,
                "values": {str(s): v for s, v in sorted(self.values.items())}, "reason": self.reason,
                "trained": self.trained, "cached": self.cached,
                "comparison": clean_json(as_record(self.comparison)) if self.comparison else None}


@dataclass(frozen=True)
class BisectResult:
    """A whole bisect: the range searched, every commit looked at, and the outcome with its culprit or suspects."""

    suite: str
    variant: str
    metric: str
    good: str
    bad: str
    candidates: tuple[str, ...]
    steps: tuple[Step, ...]
    outcome: str  # found | not_worse | undecided
    culprit: str | None = None
    culprit_subject: str = ""
    culprit_stat: str = ""
    suspects: tuple[str, ...] = ()  # undecided: the commits among which the first bad one lies
    cache: str = ""
    environment: Mapping[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> BisectExit:
        return BisectExit[self.outcome.upper()]

    @property
    def search_steps(self) -> int:
        return sum(1 for s in self.steps if s.role == "step")

    @property
    def trained(self) -> int:
        return sum(s.trained for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "suite": self.suite, "variant": self.variant, "metric": self.metric,
                "good": self.good, "bad": self.bad, "candidates": list(self.candidates),
                "steps": [s.to_json() for s in self.steps], "outcome": self.outcome, "exit_code": int(self.exit_code),
                "culprit": self.culprit, "culprit_subject": self.culprit_subject, "culprit_stat": self.culprit_stat,
                "suspects": list(self.suspects), "cache": self.cache, "runs_trained": self.trained,
                "environment": dict(self.environment)}

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())
