"""Reading a report JSON back into `Report` objects, so every output format works from the file alone.

The Markdown, JUnit, HTML and history outputs are made from a report written by `run` or `compare`, on another
machine or another night, without re-running anything and without importing torch. Per-suite entries this
version does not model are kept as they are in `ReportFile.extras`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from normreg.audit.findings import AuditReport
from normreg.errors import ResultsError
from normreg.fileio import check_fields, check_schema, describe_value, read_json
from normreg.judge.baseline import metric_specs
from normreg.judge.checks import Check, Problem
from normreg.judge.curves import CurveCheck
from normreg.judge.stats import Comparison
from normreg.report.model import SCHEMA, SUITE_JSON_HINTS, Report, SuiteInfo
from normreg.run.results import RunResult, check_run_json
from normreg.suite.spec import SeedPlan

_COMPARISON_FIELDS = tuple(f.name for f in fields(Comparison))
_COMPARISON_REQUIRED = tuple(f.name for f in fields(Comparison) if f.default is MISSING)
_SUITE_FIELDS = tuple(f.name for f in fields(SuiteInfo))


@dataclass(frozen=True)
class ReportFile:
    """A report as read from disk: the `Report`, where it came from, and per-suite extras."""

    source: str
    report: Report
    extras: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # suite -> {key: raw JSON value}

    def audit(self, suite: str) -> AuditReport | None:
        """The suite's audit findings, or None when the report has none."""
        return next((s.audit for s in self.report.suites if s.name == suite), None)


def _comparison(d: Mapping[str, Any]) -> Comparison:
    missing = [k for k in _COMPARISON_REQUIRED if k not in d]
    if missing:
        raise KeyError(", ".join(missing))
    return Comparison(**{k: d[k] for k in _COMPARISON_FIELDS if k in d})


def _suite(d: Mapping[str, Any]) -> SuiteInfo:
    known = {k: d[k] for k in _SUITE_FIELDS if k in d}
    known["seeds"] = tuple(int(s) for s in d.get("seeds", ()))
    known["metrics"] = tuple(metric_specs("<report>", "metrics", d.get("metrics") or {}).values())
    plan = d.get("seed_plan")
    known["seed_plan"] = None if plan is None else SeedPlan(min=int(plan["min"]), max=int(plan["max"]))
    known.pop("spending", None)  # stored under seed_plan, not beside it
    if plan is not None and plan.get("spending"):
        known["spending"] = plan["spending"]
    if d.get("audit") is not None:
        known["audit"] = AuditReport.from_json(d["audit"], suite=d["name"])
    if known.get("baseline_values") is not None:
        known["baseline_values"] = {v: {m: {int(s): float(x) for s, x in sv.items()} for m, sv in ms.items()}
                                    for v, ms in known["baseline_values"].items()}
    return SuiteInfo(**known)


def _run(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """JSON has no NaN, so reports store a non-finite value (which fails its run) as null: read it back as NaN."""
    nan = float("nan")
    return {**d, "metrics": {k: nan if v is None else v for k, v in (d.get("metrics") or {}).items()},
            "history": {k: [nan if x is None else x for x in v] for k, v in (d.get("history") or {}).items()}}


_LEGACY_SEED = re.compile(r"^seed (\d+): ")


def _problem(d: Mapping[str, Any]) -> Problem:
    """A problem; reports written before problems carried their seed named it at the head of the message."""
    message, seed = d["message"], d.get("seed")
    legacy = _LEGACY_SEED.match(message) if "seed" not in d else None
    if legacy:
        message, seed = message[legacy.end():], int(legacy.group(1))
    return Problem(suite=d["suite"], variant=d["variant"], kind=d["kind"], message=message,
                   expected=bool(d.get("expected", False)), seed=None if seed is None else int(seed))


def check_report(data: Mapping[str, Any], source: str) -> None:
    """Refuse a report whose fields have the wrong type, naming the file and the field (after the schema check)."""
    for key, kind in (("created", str), ("command", str)):
        if key in data and not isinstance(data[key], kind):
            raise ResultsError(f"{source}: {key}: expected a string, found {describe_value(data[key])}")
    for key in ("suites", "runs", "comparisons", "problems", "curves"):
        if not isinstance(data.get(key, []), list):
            raise ResultsError(f"{source}: {key}: expected a list, found {describe_value(data[key])}")
    if not isinstance(data.get("environment") or {}, dict):
        raise ResultsError(f"{source}: environment: expected an object, found {describe_value(data['environment'])}")
    for i, s in enumerate(data.get("suites", [])):
        check_fields(source, f"suites[{i}]", s, SuiteInfo, SUITE_JSON_HINTS)
        if isinstance(s.get("metrics"), dict):
            metric_specs(source, f"suites[{i}].metrics", s["metrics"])
    for i, r in enumerate(data.get("runs", [])):
        check_run_json(source, f"runs[{i}]", r)
    for i, c in enumerate(data.get("comparisons", [])):
        check_fields(source, f"comparisons[{i}]", c, Check, required=False)
        check_fields(source, f"comparisons[{i}]", c, Comparison)
    for i, p in enumerate(data.get("problems", [])):
        check_fields(source, f"problems[{i}]", p, Problem)


def report_from_json(data: Any, source: str = "<report>") -> ReportFile:
    """Rebuild a report from its JSON form (`normreg.report/1`); raises `ResultsError` naming `source`."""
    check_schema(Path(source), data, SCHEMA)
    check_report(data, source)
    try:
        suites = tuple(_suite(s) for s in data.get("suites", []))
        extras = {s["name"]: {k: v for k, v in s.items() if k not in _SUITE_FIELDS}
                  for s in data.get("suites", [])}
        runs = tuple(RunResult.from_json(_run(r)) for r in data.get("runs", []))
        checks = tuple(Check(suite=c["suite"], kind=c["kind"], comparison=_comparison(c),
                             expected=c.get("expected"),
                             environment_differences=c.get("environment_differences") or {},
                             suite_changes=tuple(str(x) for x in c.get("suite_changes") or ()))
                       for c in data.get("comparisons", []))
        problems = tuple(_problem(p) for p in data.get("problems", []))
        curves = tuple(CurveCheck.from_json(c) for c in data.get("curves", []))
        report = Report(created=data["created"], environment=data.get("environment") or {}, suites=suites,
                        runs=runs, checks=checks, problems=problems, command=data.get("command", "run"),
                        curves=curves)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise ResultsError(f"{source}: malformed report ({what}); regenerate it with 'normreg run' or "
                           "'normreg compare --report'") from None
    return ReportFile(source, report, {k: v for k, v in extras.items() if v})


def read_report(path: str | Path) -> ReportFile:
    """Read a report JSON written by `normreg run --report` or `normreg compare --report`, or the `report.json`
    of a run directory given as the directory."""
    path = Path(path)
    if path.is_dir():
        if not (path / "report.json").is_file():
            raise ResultsError(f"{path}: a folder without report.json; give a report file or a run directory that "
                               "'normreg run' finished")
        path = path / "report.json"
    return report_from_json(read_json(path), str(path))
