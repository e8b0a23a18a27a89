"""Reading a report JSON back into `Report` objects, so every output format works from the file alone.

The Markdown, JUnit, HTML and history outputs are made from a report written by `run` or `compare`, on another
machine or another night, without re-running anything and without importing torch. Per-suite entries this
version does not model are kept as they are in `ReportFile.extras`.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from normreg.auditing.findings import AuditReport
from normreg.choices import (
    ALPHA_HIGH,
    ALPHA_LOW,
    CHECK_KINDS,
    CORRECTIONS,
    DESIGNS,
    EXPECTATIONS,
    GOALS,
    PROBLEM_KINDS,
    REPORT_COMMANDS,
    REPORT_VERDICTS,
    RUN_STATUSES,
    SPENDING,
    VERDICTS,
)
from normreg.errors import ResultsError, printable
from normreg.execution.results import RunResult, check_run_json
from normreg.fileio import check_fields, check_schema, describe_value, finite_number, read_json
from normreg.judge.baseline import metric_specs
from normreg.judge.checks import Check, Problem
from normreg.judge.curves import CurveCheck
from normreg.judge.stats import Comparison
from normreg.names import Role, name_problem
from normreg.report.model import SCHEMA, SUITE_JSON_HINTS, Report, SuiteInfo
from normreg.suite.model import MAX_SEED_VALUE, SeedPlan

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


# ------------------------------------------------------------------------------ the schema's enums and ranges

Rule = Callable[[Any], str | None]  # None when the value fits, else what was expected


def _one_of(options: Iterable[Any]) -> Rule:
    allowed = tuple(options)
    return lambda v: None if v in allowed and not isinstance(v, bool) else \
        f"expected one of {', '.join(map(str, allowed))}, found {describe_value(v)}"


def _number_in(low: float, high: float | None = None, *, whole: bool = False, open_: bool = False) -> Rule:
    def rule(v: Any) -> str | None:
        if v is None:
            return None  # null is a type question, answered by the annotations
        inside = finite_number(v) and (v > low if open_ else v >= low) and (high is None or
                                                                            (v < high if open_ else v <= high))
        if inside and (not whole or isinstance(v, int)):
            return None
        what = "a whole number" if whole else "a number"
        span = f"in ({low:g}, {high:g})" if open_ else (f"from {low:g} to {high:g}" if high is not None
                                                        else f">= {low:g}")
        return f"expected {what} {span}, found {describe_value(v)}"
    return rule


def _named(role: Role) -> Rule:
    return lambda v: name_problem(v, role) if isinstance(v, str) else None


def _label(v: Any) -> str | None:  # a comparison's side: a variant, or `file:variant` in compare's reports
    return None if not isinstance(v, str) or (v and v.isprintable() and len(v) <= 1000) else \
        f"expected a printable label, found {describe_value(v)}"


def _iso_date(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    try:
        _dt.datetime.fromisoformat(v)
    except ValueError:
        return f"expected an ISO 8601 date and time (e.g. 2025-03-01T03:00:00+00:00), found {describe_value(v)}"
    return None


_SEED, _COUNT, _UNIT = _number_in(0, MAX_SEED_VALUE, whole=True), _number_in(0, whole=True), _number_in(0, 1)
_ALPHA, _NONNEG = _number_in(ALPHA_LOW, ALPHA_HIGH, open_=True), _number_in(0)
# Paths into the report (`[]`: each element of a list, `*`: each value of an object) and the rule of each.
RULES: Mapping[str, Rule] = {
    "command": _one_of(REPORT_COMMANDS), "created": _iso_date, "verdict": _one_of(REPORT_VERDICTS),
    "exit_code": _one_of(REPORT_VERDICTS.values()),
    "suites[].name": _named("suite"), "suites[].reference": _named("variant"), "suites[].alpha": _ALPHA,
    "suites[].seeds[]": _SEED, "suites[].design": _one_of(DESIGNS), "suites[].correction": _one_of(CORRECTIONS),
    "suites[].seed_plan.min": _COUNT, "suites[].seed_plan.max": _COUNT, "suites[].seed_plan.stages[]": _COUNT,
    "suites[].seed_plan.spending": _one_of(SPENDING), "suites[].stages_run": _COUNT,
    "suites[].seeds_used.*": _COUNT,
    "runs[].suite": _named("suite"), "runs[].variant": _named("variant"), "runs[].seed": _SEED,
    "runs[].status": _one_of(RUN_STATUSES), "runs[].duration_s": _NONNEG, "runs[].threads": _number_in(1, whole=True),
    "comparisons[].suite": _label, "comparisons[].kind": _one_of(CHECK_KINDS), "comparisons[].metric": _named("metric"),
    "comparisons[].a": _label, "comparisons[].b": _label, "comparisons[].goal": _one_of(GOALS),
    "comparisons[].verdict": _one_of(VERDICTS), "comparisons[].expected": lambda v: None if v is None else
    _one_of(EXPECTATIONS)(v), "comparisons[].alpha": _ALPHA, "comparisons[].min_effect": _NONNEG,
    "comparisons[].n_a": _COUNT, "comparisons[].n_b": _COUNT, "comparisons[].design": _one_of(DESIGNS),
    "comparisons[].correction": _one_of(CORRECTIONS), "comparisons[].spending": lambda v: None if v is None else
    _one_of(SPENDING)(v), "comparisons[].stages[]": _COUNT, "comparisons[].seeds_needed": _COUNT,
    **{f"comparisons[].{k}": _UNIT for k in ("p_value", "p_adjusted", "p_equivalence", "p_equivalence_adjusted",
                                             "p_sequential", "p_equivalence_sequential", "power", "power_unpaired",
                                             "ci_level")},
    **{f"comparisons[].{k}": _NONNEG for k in ("sd_a", "sd_b", "sd_diff", "se", "mde", "df")},
    "problems[].suite": _named("suite"), "problems[].kind": _one_of(PROBLEM_KINDS), "problems[].seed": _SEED,
    "problems[].variant": lambda v: None if v == "*" else _named("variant")(v),
}


def _at(value: Any, parts: Sequence[str], where: str) -> Iterator[tuple[str, Any]]:
    """The values at a `RULES` path, with their key paths; parts the file does not have are skipped (whether a
    field must be there is the annotations' question)."""
    if not parts:
        yield where, value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(value, dict):
            for k, v in value.items():
                yield from _at(v, rest, f"{where}.{k}")
        return
    key, each = (head[:-2], True) if head.endswith("[]") else (head, False)
    if not isinstance(value, dict) or key not in value:
        return
    inner, where = value[key], f"{where}.{key}" if where else key
    if not each:
        yield from _at(inner, rest, where)
    elif isinstance(inner, list):
        for i, v in enumerate(inner):
            yield from _at(v, rest, f"{where}[{i}]")


def check_rules(data: Mapping[str, Any], source: str) -> None:
    """Refuse a report whose closed fields hold a value outside the schema (an unknown verdict or kind, a count
    below zero, a p-value above one, a date that is not one), naming the file and the field's path."""
    for path, rule in RULES.items():
        for where, value in _at(data, path.split("."), ""):
            problem = rule(value)
            if problem:
                raise ResultsError(f"{source}: {printable(where)}: {problem}; regenerate the file with 'normreg run' "
                                   "or 'normreg compare --report'")
    if data.get("verdict") in REPORT_VERDICTS and "exit_code" in data and \
            data["exit_code"] != REPORT_VERDICTS[data["verdict"]]:
        raise ResultsError(f"{source}: exit_code: {data['exit_code']} does not go with verdict "
                           f"'{data['verdict']}' (exit {REPORT_VERDICTS[data['verdict']]}); the file was edited")


def check_report(data: Mapping[str, Any], source: str) -> None:
    """Refuse a report whose fields have the wrong type, or a value outside the schema's enums and ranges, naming
    the file and the field (after the schema check)."""
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
    for key, kind in (("normreg_version", str), ("verdict", str), ("exit_code", int)):
        if key in data and (not isinstance(data[key], kind) or isinstance(data[key], bool)):
            raise ResultsError(f"{source}: {key}: expected {'a whole number' if kind is int else 'a string'}, "
                               f"found {describe_value(data[key])}")
    check_rules(data, source)


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
