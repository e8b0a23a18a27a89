"""History: a series of nightly reports, ordered by date, as each variant's metric over time.

`normreg history DIR_OR_REPORTS...` reads the reports (folders are searched for report JSON files), and shows
per suite, metric and variant the mean and spread of the seeds night by night, marking the nights on which a
check of that variant failed. That tells a team *when* a regression came in.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from normreg.errors import ResultsError
from normreg.judge.stats import mean_sd
from normreg.report.file import ReportFile, read_report


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

    @property
    def label(self) -> str:
        """A short axis label: the date, and the time when two nights share a date."""
        return self.created[:16].replace("T", " ")


@dataclass(frozen=True)
class Series:
    """One variant's values of one metric of one suite, night by night (`points[i].night` indexes the nights)."""

    suite: str
    metric: str
    variant: str
    goal: str
    points: tuple[NightPoint, ...]


@dataclass(frozen=True)
class History:
    nights: tuple[Night, ...]
    series: tuple[Series, ...]
    skipped: tuple[str, ...] = ()  # duplicate reports left out (the same run written twice)

    def grouped(self) -> dict[tuple[str, str], list[Series]]:
        out: dict[tuple[str, str], list[Series]] = {}
        for s in self.series:
            out.setdefault((s.suite, s.metric), []).append(s)
        return out


def _is_report(path: Path) -> bool:
    """A cheap look at the head of a JSON file: is it a normreg report?"""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and str(data.get("schema", "")).startswith("normreg.report/")


def find_reports(paths: Sequence[str | Path]) -> list[Path]:
    """Report files named, and every report JSON under the folders named (other JSON files are ignored)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [f for f in sorted(p.rglob("*.json")) if _is_report(f)]
        elif p.exists():
            found.append(p)
        else:
            raise ResultsError(f"{p}: no such file or directory (expected report JSON files or folders of them)")
    if not found:
        raise ResultsError(f"no normreg report found in {', '.join(map(str, paths))}; write reports with "
                           "'normreg run ... --report FILE'")
    return found


def _when(created: str, source: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(created)
    except ValueError:
        raise ResultsError(f"{source}: 'created' is {created!r}, not an ISO 8601 date") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def build_history(reports: Sequence[ReportFile]) -> History:
    """Order reports by creation date and gather each (suite, metric, variant) series."""
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
    nights = []
    series: dict[tuple[str, str, str], list[NightPoint]] = {}
    goals: dict[tuple[str, str], str] = {}
    for i, rf in enumerate(kept):
        rep = rf.report
        failing = [c for c in rep.checks if c.failed]
        nights.append(Night(rf.source, rep.created, rep.environment.get("git_commit"), rep.verdict,
                            tuple(f"{c.suite} {c.comparison.metric} {c.comparison.a} vs {c.comparison.b}"
                                  for c in failing)))
        bad = {(c.suite, c.comparison.metric, c.comparison.b) for c in failing}
        broken = {(p.suite, p.variant) for p in rep.problems if not p.expected}
        for s in rep.suites:
            for m, spec in s.metrics.items():
                goals[(s.name, m)] = str(spec.get("goal", "max"))
        values: dict[tuple[str, str, str], list[float]] = {}
        for run in sorted(rep.runs, key=lambda r: r.seed):
            if run.ok:
                for m, v in run.metrics.items():
                    if (run.suite, m) in goals and math.isfinite(v):
                        values.setdefault((run.suite, m, run.variant), []).append(v)
        for key, vals in values.items():
            failed = key in bad or (key[0], key[2]) in broken
            series.setdefault(key, []).append(NightPoint(i, tuple(vals), failed))
    out = tuple(Series(suite, metric, variant, goals[(suite, metric)], tuple(points))
                for (suite, metric, variant), points in sorted(series.items(), key=lambda kv: kv[0][:2]))
    return History(tuple(nights), out, tuple(skipped))


def load_history(paths: Sequence[str | Path]) -> History:
    """Read every report in `paths` (files or folders) into a history."""
    return build_history([read_report(p) for p in find_reports(paths)])


def render_history(history: History) -> str:
    """The terminal view: per suite and metric, one row per night, one column per variant (mean ± sd, n)."""
    parts = []
    for (suite, metric), group in history.grouped().items():
        head = ["night", "commit", *[s.variant for s in group]]
        rows = []
        for i, night in enumerate(history.nights):
            cells = [night.label, (night.commit or "-")[:10]]
            for s in group:
                p = next((p for p in s.points if p.night == i), None)
                if p is None:
                    cells.append("-")
                    continue
                n = len(p.values)
                mean, sd = mean_sd(p.values)
                text = f"{mean:.4g} ± {sd:.2g}" if sd is not None else f"{mean:.4g}"
                cells.append(f"{text} (n={n}){' FAIL' if p.failed else ''}")
            rows.append(cells)
        widths = [max(len(r[k]) for r in (head, *rows)) for k in range(len(head))]
        goal = group[0].goal
        table = [head, ["-" * w for w in widths], *rows]
        parts.append("\n".join([f"{suite}: {metric} ({'higher' if goal == 'max' else 'lower'} is better)",
                                *("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                                  for r in table)]))
    if not parts:
        parts.append("No run results in these reports.")
    fails = [n for n in history.nights if n.verdict != "pass"]
    parts.append(f"{len(history.nights)} nights, {len(fails)} not passing"
                 + (f"; first: {fails[0].label} ({fails[0].source})" if fails else ""))
    if history.skipped:
        parts.append(f"Left out as duplicates of another report: {', '.join(history.skipped)}")
    return "\n\n".join(parts)
