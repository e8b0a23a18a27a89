"""The terminal form of `normreg history`: per suite and metric, one row per night, one column per variant, and
the changes found."""

from __future__ import annotations

from collections.abc import Sequence

from normreg.judge.changepoints import Evidence, Side
from normreg.judge.stats import mean_sd
from normreg.render.labels import interval, mean_pm_sd, number, p_value, signed, text_table
from normreg.report.history import Change, History, Night, Series


def render_history(history: History) -> str:
    """The terminal view: per suite and metric, one row per night, one column per variant (mean ± sd, n)."""
    parts = []
    for (suite, metric), group in history.grouped().items():
        head = ["night", "commit", *[s.variant for s in group]]
        rows = []
        for i, night in enumerate(history.nights):
            cells = [night.label + night_marks(night), short_commit(night.commit)]
            for s in group:
                p = next((p for p in s.points if p.night == i), None)
                if p is None:
                    cells.append("-")
                    continue
                n = len(p.values)
                mean, sd = mean_sd(p.values)
                cells.append(f"{mean_pm_sd(mean, sd)} (n={n}){' FAIL' if p.failed else ''}")
            rows.append(cells)
        goal = group[0].goal
        parts.append("\n".join([f"{suite}: {metric} ({'higher' if goal == 'max' else 'lower'} is better)",
                                *text_table(head, rows), *_change_lines(history, group)]))
    if not parts:
        parts.append("No run results in these reports.")
    fails = [n for n in history.nights if n.verdict != "pass"]
    changes = history.changes()
    parts.append(f"{len(history.nights)} nights, {len(fails)} not passing"
                 + (f"; first: {fails[0].label} ({fails[0].source})" if fails else "")
                 + f"; {len(changes)} change{'s' * (len(changes) != 1)} found")
    if history.skipped:
        parts.append(f"Left out as duplicates of another report: {', '.join(history.skipped)}")
    if history.unreadable:
        parts.append(f"Left out, not valid JSON (cut short while being written?): {', '.join(history.unreadable)}")
    if history.ad_hoc:
        parts.append(ad_hoc_line(history.ad_hoc))
    return "\n\n".join(parts)


SHOWN_PATHS = 3


def ad_hoc_line(sources: Sequence[str]) -> str:
    """The reports left out because a suite differed from its newest report: how many, and the first few."""
    shown = ", ".join(sources[:SHOWN_PATHS]) + (f" and {len(sources) - SHOWN_PATHS} more"
                                                if len(sources) > SHOWN_PATHS else "")
    return (f"Left out, {len(sources)} report{'s' * (len(sources) != 1)} of a suite differing from its newest "
            f"report (ad-hoc runs with --set or other seeds, or the suite before an edit; --all-runs keeps them, "
            f"marked): {shown}")


def night_marks(night: Night) -> str:
    """What sets a night apart from a plain nightly run, for the tables: ` (other suite: NAME; all runs failed)`;
    "" for a plain one."""
    parts = ([f"other suite: {', '.join(night.other_suite)}"] if night.other_suite else []) + \
        (["all runs failed"] if night.all_failed else [])
    return f" ({'; '.join(parts)})" if parts else ""


def short_commit(commit: str | None) -> str:
    """The first 10 characters of a commit, keeping a `+dirty` mark; "-" when the report has none."""
    if not commit:
        return "-"
    return commit[:10] + ("+dirty" if commit.endswith("+dirty") else "")


def _side(side: Side) -> str:
    nights = f"{side.nights} night{'s' * (side.nights != 1)}"
    if side.distinct != side.nights:
        nights += f" ({side.distinct} distinct)"
    return f"{nights}, {side.values} value{'s' * (side.values != 1)}"


def evidence_text(evidence: Evidence, prefix: str = "evidence: ") -> str:
    """What a change's test used: nights and distinct nights per side, their values, and the unit tested."""
    how = ("t on the distinct nights' means" if evidence.unit == "nights" else
           "Welch on the seeds' values (one distinct night a side: night-to-night variation unseen)")
    return f"{prefix}before {_side(evidence.before)}; after {_side(evidence.after)}; {how}"


def environment_text(change: Change) -> str:
    """Whether the environment fingerprint changed between the last night before a change and its night: a change
    that comes with a new torch, device or thread count may be the platform's, not the code's."""
    if not change.environment_recorded:
        return "environment not recorded"
    if not change.environment:
        return "environment unchanged"
    what = ", ".join(f"{d.key} {d.before} -> {d.after}" for d in change.environment)
    return f"environment changed that night ({what}): the platform may have moved it, not the code"


def change_summary(history: History, change: Change) -> str:
    """One change in words: where, between which commits, before -> after with the interval, p and verdict, the
    evidence the test used and whether the environment changed with it."""
    c = change.comparison
    new, old = history.nights[change.night], history.nights[change.last_before]
    ci = f" {interval(c, 4)}" if c.ci_low is not None else ""
    p = f", p={p_value(c.p_value)}" if c.p_value is not None else ""
    return (f"from {new.label} (commit {short_commit(new.commit)}; last night before: {old.label}, commit "
            f"{short_commit(old.commit)}): {number(c.mean_a)} -> {number(c.mean_b)}, "
            f"diff {signed(c.diff, 4)}{ci}{p}: {c.verdict}; {evidence_text(change.evidence)}; "
            f"{environment_text(change)}")


def _change_lines(history: History, group: Sequence[Series]) -> list[str]:
    lines = []
    for s in group:
        lines += [f"  {s.variant}: {change_summary(history, c)}" for c in s.changes]
        if s.outliers:
            lines.append(f"  {s.variant}: one-night outlier{'s' * (len(s.outliers) > 1)} (not a change): "
                         + ", ".join(history.nights[i].label for i in s.outliers))
    if not lines:
        return ["No change found."]
    return [f"Changes (ruptures PELT, each confirmed at alpha {_alpha(group)} and beyond min_effect by a test "
            f"whose unit is the distinct night; {METHOD}):", *lines]


METHOD = "a night repeating another's values is one observation, a change must hold two nights"


def _alpha(group: Sequence[Series]) -> str:
    alphas = {c.comparison.alpha for s in group for c in s.changes}
    return f"{alphas.pop():g}" if len(alphas) == 1 else "the suite's"
