"""The report: what ran, every per-seed value, every comparison with its verdict, and the overall outcome.

Schema `normreg.report/1` (documented in the README) is what a nightly CI job reads. The outcome and exit code
are derived from the checks, never stored twice in memory. The version changes only when a reader of the old
version would misread a new report; keys added beside the old ones (`curves`) keep it, since readers take the
keys they know and keep the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from normreg.auditing.findings import AuditReport
from normreg.choices import DEFAULT_DESIGN, REPORT_VERDICTS
from normreg.errors import ExitCode
from normreg.execution.results import TIDY_COLUMNS, RunResult, tidy_rows
from normreg.fileio import clean_json, write_json_atomic
from normreg.judge.checks import Check, Problem
from normreg.judge.curves import CurveCheck
from normreg.suite.model import MetricSpec, SeedPlan, metrics_to_json
from normreg.version import __version__

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "normreg.report/1"


@dataclass(frozen=True)
class SuiteInfo:
    """What a report says about one suite: its settings, its baseline, how its seeds ran, and the likely cause."""

    name: str
    path: str
    digest: str
    reference: str
    alpha: float
    seeds: tuple[int, ...]
    metrics: tuple[MetricSpec, ...]
    run_dir: str | None
    baseline: str | None  # path of the stored baseline compared against, None when there is none
    baseline_environment: Mapping[str, Any] | None = None
    baseline_updated: bool = False
    design: str = DEFAULT_DESIGN
    correction: str = "none"
    seed_plan: SeedPlan | None = None  # when seeds ran in stages
    spending: str = "pocock"  # the error-spending function of staged seeds (in JSON, under `seed_plan`)
    stages_run: int | None = None
    seeds_used: Mapping[str, int] | None = None  # variant -> seeds it ran, when seeds ran in stages
    # the stored baseline's per-seed values (variant -> metric -> seed -> value), so reports can plot them
    baseline_values: Mapping[str, Mapping[str, Mapping[int, float]]] | None = None
    audit: AuditReport | None = None  # for suites with a failing pair: the likely cause
    baseline_note: str | None = None  # e.g. a keyed baseline was missing and the plain one was used instead

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "spending"}
        d["seeds"] = list(self.seeds)
        d["metrics"] = metrics_to_json(self.metrics)
        d["baseline_environment"] = None if self.baseline_environment is None else dict(self.baseline_environment)
        d["seeds_used"] = None if self.seeds_used is None else dict(self.seeds_used)
        d["seed_plan"] = None if self.seed_plan is None else {
            "min": self.seed_plan.min, "max": self.seed_plan.max, "spending": self.spending,
            "stages": list(self.seed_plan.stages)}
        d["audit"] = None if self.audit is None else self.audit.to_json()
        if self.baseline_values is not None:
            d["baseline_values"] = {v: {m: {str(s): x for s, x in sorted(sv.items())} for m, sv in ms.items()}
                                    for v, ms in self.baseline_values.items()}
        return d


# Fields whose JSON form is not their Python type, for checking a report read from disk (`fileio.check_fields`).
SUITE_JSON_HINTS: Mapping[str, Any] = {
    "metrics": Mapping[str, Mapping[str, Any]],  # {name: {goal, min_effect}}
    "seed_plan": Mapping[str, Any] | None,  # {min, max, spending, stages}
    "audit": Mapping[str, Any] | None,  # normreg.audit/1
}


@dataclass(frozen=True)
class Report:
    created: str
    environment: Mapping[str, Any]
    suites: tuple[SuiteInfo, ...]
    runs: tuple[RunResult, ...]
    checks: tuple[Check, ...]
    problems: tuple[Problem, ...] = ()
    command: str = "run"
    curves: tuple[CurveCheck, ...] = ()  # learning curves compared epoch by epoch (they inform unless told to fail)

    @property
    def verdict(self) -> str:
        if any(p.kind in ("run_failed", "write_failed") and not p.expected for p in self.problems):
            return "error"
        if any(c.failed for c in self.checks) or any(p.kind != "run_failed" for p in self.problems) or \
                any(c.failed for c in self.curves):
            return "fail"
        return "pass"

    @property
    def exit_code(self) -> ExitCode:
        return REPORT_VERDICTS[self.verdict]

    def to_json(self) -> dict[str, Any]:
        d = {
            "schema": SCHEMA,
            "normreg_version": __version__,
            "command": self.command,
            "created": self.created,
            "verdict": self.verdict,
            "exit_code": int(self.exit_code),
            "environment": dict(self.environment),
            "suites": [s.to_json() for s in self.suites],
            "runs": [clean_json(r.to_json()) for r in self.runs],
            "comparisons": [c.to_json() for c in self.checks],
            "problems": [p.to_json() for p in self.problems],
        }
        if self.curves:  # only where a suite declares curves: other reports stay as they were
            d["curves"] = [c.to_json() for c in self.curves]
        return d

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    def runs_frame(self) -> pd.DataFrame:
        """The runs as a tidy pandas table, one row per (suite, variant, seed, metric), as in `results.csv`:
        columns suite, variant, seed, metric, value (float; NaN for a failed run's row), status, duration_s, error,
        device. pandas is imported here, on first use: the commands never need it."""
        import pandas as pd

        rows = [{**row, "value": float(row["value"]) if row["value"] != "" else math.nan, "device": r.device}
                for r in self.runs for row in tidy_rows(r)]
        columns = [*TIDY_COLUMNS, "device"]
        return pd.DataFrame(rows, columns=columns).astype({"seed": "int64", "value": "float64"})

    def checks_frame(self) -> pd.DataFrame:
        """The comparisons as a pandas table, one row per check, with the report's JSON fields as columns
        (suite, kind, metric, a, b, diff, ci_low, ci_high, p_value, p_adjusted, verdict, failed, ...)."""
        import pandas as pd

        return pd.DataFrame([c.to_json() for c in self.checks])
