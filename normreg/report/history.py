"""History: a series of nightly reports, ordered by date, as each variant's metric over time.

`normreg history DIR_OR_REPORTS...` reads the reports (folders are searched for report JSON files), and shows
per suite, metric and variant the mean and spread of the seeds night by night, marking the nights on which a
check of that variant failed, and the nights where its values changed (`judge.changepoints`: found by ruptures,
confirmed by a test whose unit is the distinct night, so a deterministic nightly's repeats are no new evidence).
That tells a team *when* a regression came in, between which two commits, and whether the environment (torch,
device, threads: `environment.COMPARED_KEYS`) changed the same night, which points at the platform, not the code.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from normreg.environment import COMPARED_KEYS, differences
from normreg.errors import ResultsError
from normreg.fileio import read_json
from normreg.judge import changepoints
from normreg.judge.changepoints import detect_changes
from normreg.judge.stats import as_record
from normreg.report.file import ReportFile, read_report
from normreg.suite.model import MetricSpec


@dataclass(frozen=True)
class NightPoint:
    """One variant's values on one night, and whether a check on it failed that night."""

    night: int
    values: tuple[float, ...]
    failed: bool


@dataclass(frozen=True)
class Night:
    """One report in the series."""

    source: str
    created: str
    commit: str | None
    verdict: str
    failed_checks: tuple[str, ...]  # "suite metric a vs b" of every failing check
    other_suite: tuple[str, ...] = ()  # suites whose content differs from their newest report's (an ad-hoc run)
    all_failed: bool = False  # not one run finished: the night has no values
    environment: tuple[tuple[str, Any], ...] = ()  # the report's (key, value) of environment.COMPARED_KEYS

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The environment keys that can change results, as a dict."""
        return dict(self.environment)

    @property
    def label(self) -> str:
        """The date and time, to the second (two runs of one night stay apart)."""
        return self.created[:19].replace("T", " ")


@dataclass(frozen=True)
class EnvironmentChange:
    """A key of the environment fingerprint that differs between the last night before a change and its night."""

    key: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Change(changepoints.Change):
    """A confirmed change (`judge.changepoints.Change`: `night`, `before` and `after` index `History.nights`)
    with `last_before`, the last night before the change with values: the commits of `last_before` and `night`
    bound the change (`normreg bisect --good --bad`). `environment` lists the fingerprint keys (torch, device,
    thread count, ...) that changed between those two nights: a change that comes with one may be the platform's,
    not the code's. `environment_recorded` is False when the two reports share none of those keys."""

    last_before: int
    environment: tuple[EnvironmentChange, ...] = ()
    environment_recorded: bool = True


@dataclass(frozen=True)
class Series:
    """One variant's values of one metric of one suite, night by night (`points[i].night` indexes the nights),
    with the changes found in it and the nights left out as one-night outliers."""

    suite: str
    metric: str
    variant: str
    goal: str
    points: tuple[NightPoint, ...]
    changes: tuple[Change, ...] = ()
    outliers: tuple[int, ...] = ()
    no_changes_reason: str | None = None  # why no change could be looked for, when that is the case


@dataclass(frozen=True)
class History:
    nights: tuple[Night, ...]
    series: tuple[Series, ...]
    skipped: tuple[str, ...] = ()  # duplicate reports left out (the same run written twice)
    unreadable: tuple[str, ...] = ()  # JSON files in the folders searched that could not be read (e.g. truncated)
    ad_hoc: tuple[str, ...] = ()  # reports left out: a suite's content differed from its newest report's

    def grouped(self) -> dict[tuple[str, str], list[Series]]:
        out: dict[tuple[str, str], list[Series]] = {}
        for s in self.series:
            out.setdefault((s.suite, s.metric), []).append(s)
        return out

    def changes(self) -> list[tuple[Series, Change]]:
        """Every confirmed change, oldest first."""
        return sorted(((s, c) for s in self.series for c in s.changes), key=lambda sc: sc[1].night)

    def to_json(self) -> dict[str, Any]:
        """The history as `normreg history --json` writes it (`"schema": "normreg.history/1"`): the nights, and
        per series its points and changes, each change with its test, the evidence it used and the environment
        keys that changed with it."""
        return {"schema": HISTORY_SCHEMA,
                "nights": [{"source": n.source, "created": n.created, "commit": n.commit, "verdict": n.verdict,
                            "failed_checks": list(n.failed_checks), "other_suite": list(n.other_suite),
                            "all_failed": n.all_failed, "environment": n.fingerprint} for n in self.nights],
                "series": [_series_json(s) for s in self.series],
                "skipped": list(self.skipped), "unreadable": list(self.unreadable), "ad_hoc": list(self.ad_hoc)}

    def recent_regressions(self, within: int) -> list[tuple[Series, Change]]:
        """Series whose newest change is a regression on one of the last `within` nights (for CI)."""
        first = len(self.nights) - within
        out = []
        for s in self.series:
            if s.changes and s.changes[-1].verdict == "regressed" and s.changes[-1].night >= first:
                out.append((s, s.changes[-1]))
        return out


HISTORY_SCHEMA = "normreg.history/1"


def change_json(c: Change) -> dict[str, Any]:
    """One change as the history JSON holds it."""
    e = c.evidence
    return {"night": c.night, "last_before": c.last_before, "before": list(c.before), "after": list(c.after),
            "verdict": c.verdict, "comparison": as_record(c.comparison),
            "evidence": {"unit": e.unit, "before": asdict(e.before), "after": asdict(e.after)},
            "environment_recorded": c.environment_recorded,
            "environment": [{"key": d.key, "before": d.before, "after": d.after} for d in c.environment]}


def _series_json(s: Series) -> dict[str, Any]:
    return {"suite": s.suite, "metric": s.metric, "variant": s.variant, "goal": s.goal,
            "points": [{"night": p.night, "values": list(p.values), "failed": p.failed} for p in s.points],
            "changes": [change_json(c) for c in s.changes], "outliers": list(s.outliers),
            "no_changes_reason": s.no_changes_reason}


def _is_report(path: Path, unreadable: list[str] | None = None) -> bool:
    """A cheap look at a JSON file: is it a normreg report? One that cannot be read is noted in `unreadable`."""
    try:
        data = read_json(path)
    except ResultsError as e:
        if unreadable is not None:
            unreadable.append(f"{path} ({f'line {e.line}: ' if e.line else ''}{e.reason or e})")
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("normreg.report/")


def find_reports(paths: Sequence[str | Path], unreadable: list[str] | None = None) -> list[Path]:
    """Report files named, and every report JSON under the folders named (other JSON files are ignored; those
    that are not valid JSON, such as a report cut short, are listed in `unreadable`)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [f for f in sorted(p.rglob("*.json")) if _is_report(f, unreadable)]
        elif p.exists():
            found.append(p)
        else:
            raise ResultsError(f"{p}: no such file or directory (expected report JSON files or folders of them)")
    if not found:
        bad = f" (not valid JSON: {', '.join(unreadable)})" if unreadable else ""
        raise ResultsError(f"no normreg report found in {', '.join(map(str, paths))}{bad}; write reports with "
                           "'normreg run ... --report FILE'")
    return found


def _when(created: str, source: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(created)
    except ValueError:
        raise ResultsError(f"{source}: 'created' is {created!r}, not an ISO 8601 date") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _other_suites(reports: Sequence[ReportFile]) -> list[tuple[str, ...]]:
    """Per report (in date order), the suites whose digest differs from that suite's newest report: a run with
    `--set` or other seeds, or of the suite before an edit. The newest report of each suite defines it."""
    newest: dict[str, str] = {}
    for r in reversed(reports):
        for s in r.report.suites:
            newest.setdefault(s.name, s.digest)
    return [tuple(s.name for s in r.report.suites if s.digest != newest[s.name]) for r in reports]


def build_history(reports: Sequence[ReportFile], *, include_other_suites: bool = False) -> History:
    """Order reports by creation date and gather each (suite, metric, variant) series.

    A report in which a suite's content (its digest) differs from that suite's newest report is an ad-hoc run
    (`--set`, other seeds) or one of the suite before an edit: its values are not comparable night to night, so
    it is left out and listed in `ad_hoc`, unless `include_other_suites`, which keeps it as a marked night."""
    ordered = sorted(reports, key=lambda r: _when(r.report.created, r.source))
    kept: list[ReportFile] = []
    skipped: list[str] = []
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for r in ordered:
        key = (r.report.created, tuple(s.name for s in r.report.suites))
        if key in seen:
            skipped.append(r.source)
            continue
        seen.add(key)
        kept.append(r)
    others = _other_suites(kept)
    ad_hoc = [] if include_other_suites else [r.source for r, o in zip(kept, others, strict=True) if o]
    others = [o for r, o in zip(kept, others, strict=True) if r.source not in ad_hoc]
    kept = [r for r in kept if r.source not in ad_hoc]
    nights = []
    series: dict[tuple[str, str, str], list[NightPoint]] = {}
    goals: dict[tuple[str, str], str] = {}
    specs: dict[tuple[str, str], tuple[MetricSpec, float]] = {}  # the newest report's spec and alpha
    for i, rf in enumerate(kept):
        rep = rf.report
        failing = [c for c in rep.checks if c.failed]
        nights.append(Night(rf.source, rep.created, rep.environment.get("git_commit"), rep.verdict,
                            tuple(f"{c.suite} {c.comparison.metric} {c.comparison.a} vs {c.comparison.b}"
                                  for c in failing), others[i], not any(r.ok for r in rep.runs),
                            tuple((k, rep.environment[k]) for k in COMPARED_KEYS if k in rep.environment)))
        bad = {(c.suite, c.comparison.metric, c.comparison.b) for c in failing}
        broken = {(p.suite, p.variant) for p in rep.problems if not p.expected}
        for s in rep.suites:
            for m in s.metrics:
                goals[(s.name, m.name)] = m.goal
                specs[(s.name, m.name)] = (m, float(s.alpha))
        values: dict[tuple[str, str, str], list[float]] = {}
        for run in sorted(rep.runs, key=lambda r: r.seed):
            if run.ok:
                for m, v in run.metrics.items():
                    if (run.suite, m) in goals and math.isfinite(v):
                        values.setdefault((run.suite, m, run.variant), []).append(v)
        for key, vals in values.items():
            failed = key in bad or (key[0], key[2]) in broken
            series.setdefault(key, []).append(NightPoint(i, tuple(vals), failed))
    out = tuple(_with_changes(Series(suite, metric, variant, goals[(suite, metric)], tuple(points)),
                              *specs[(suite, metric)], nights)
                for (suite, metric, variant), points in sorted(series.items(), key=lambda kv: kv[0][:2]))
    return History(tuple(nights), out, tuple(skipped), ad_hoc=tuple(ad_hoc))


def _with_changes(series: Series, spec: MetricSpec, alpha: float, nights: Sequence[Night]) -> Series:
    """The series with the changes `detect_changes` confirms in its per-seed values, each with the environment
    keys that changed between the last night before it and its night."""
    per_night: list[tuple[float, ...]] = [()] * len(nights)
    for p in series.points:
        per_night[p.night] = p.values
    found = detect_changes(per_night, spec, alpha)
    changes = []
    for c in found.changes:
        last = max(i for i in range(c.before[0], c.night) if per_night[i] and i not in found.outliers)
        old, new = nights[last].fingerprint, nights[c.night].fingerprint
        changes.append(Change(c.night, c.before, c.after, c.comparison, c.evidence, last_before=last,
                              environment=tuple(EnvironmentChange(k, a, b)
                                                for k, (a, b) in differences(old, new).items()),
                              environment_recorded=bool(set(old) & set(new))))
    return replace(series, changes=tuple(changes), outliers=found.outliers, no_changes_reason=found.reason)


def load_history(paths: Sequence[str | Path], *, include_other_suites: bool = False) -> History:
    """Read every report in `paths` (files or folders) into a history (see `build_history`)."""
    unreadable: list[str] = []
    history = build_history([read_report(p) for p in find_reports(paths, unreadable)],
                            include_other_suites=include_other_suites)
    return replace(history, unreadable=tuple(unreadable))
