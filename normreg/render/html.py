"""Self-contained HTML pages: the report of one run, and metrics across nights.

One file, no network needed to view it: styles inline, figures inline as SVG (normreg/render/plots.py), no
scripts. The report
page shows the verdict table, then per suite every seed's value per variant beside the stored baseline's, the
learning curves when runs recorded per-epoch values, audit findings when the report holds them, and the
environment with its differences from the baseline's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from normreg.auditing.findings import AuditReport
from normreg.environment import COMPARED_KEYS
from normreg.judge.checks import Check
from normreg.judge.curves import CurveCheck
from normreg.render.escape import html_text as escape
from normreg.render.labels import (
    EN_DASH,
    HTML,
    HTML_CLASS,
    HTML_ROW_CLASS,
    OK_VERDICTS,
    OTHER_ENVIRONMENT,
    SUITE_CHANGED,
    adjusted_p,
    correlation,
    environment_changes,
    first_per_suite,
    interval,
    level,
    mean_pm_sd,
    number,
    order,
    p_value,
    pairing_note,
    resumed_notes,
    signed,
    status,
    verdict_shown,
)
from normreg.render.summary import describe, group_problems
from normreg.report.model import Report, SuiteInfo
from normreg.suite.diff import summarise

if TYPE_CHECKING:
    from normreg.report.history import History

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;margin:0 auto;
max-width:1180px;padding:0 24px 48px}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}.meta{color:#555;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #d6d6d6;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}tr.fail td{background:#fdecea}tr.xfail td{background:#fff6e0}tr.diff td{background:#fff6e0}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}.error{background:#6a1b9a}
table.verdicts td:last-child{min-width:220px}.scroll{overflow-x:auto}
.v-fail{color:#c62828;font-weight:600}.v-xfail{color:#a86400;font-weight:600}.v-ok{color:#2e7d32}
.reason{color:#555;font-size:12px}svg.figure{max-width:100%;height:auto;display:block;margin:6px 0}
code{background:#f3f3f3;padding:0 3px;border-radius:3px}.sev-error td{background:#fdecea}
.sev-warning td{background:#fff6e0}ul{margin:4px 0 12px}
"""


def _g(x: float | None, digits: int = 4) -> str:
    return number(x, digits, missing=EN_DASH)


def _page(title: str, body: Iterable[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _badge(verdict: str) -> str:
    return f'<span class="badge {escape(verdict)}">{escape(verdict.upper())}</span>'


# ------------------------------------------------------------------------------------------- verdicts


def _verdict(check: Check) -> str:
    cls = HTML_CLASS[status(check)]
    if not cls and check.comparison.verdict in OK_VERDICTS:
        cls = "v-ok"
    return f'<span class="{cls}">{HTML.label(check, escape)}</span>'


def _side(mean: float | None, sd: float | None, n: int) -> str:
    return f"{mean_pm_sd(mean, sd, EN_DASH)}<br><small>n={n}</small>"


def verdict_table(checks: Sequence[Check]) -> str:
    rows = []
    for ch in order(checks):
        c = ch.comparison
        cls = HTML_ROW_CLASS[status(ch)]
        ci = interval(c, missing=EN_DASH)
        if c.ci_low is not None:
            ci += f"<br><small>{level(c.ci_level)} CI</small>"
        diff = signed(c.diff, 4, missing=EN_DASH)
        p = escape(p_value(c.p_value, missing=EN_DASH))
        adjusted = adjusted_p(c, missing=EN_DASH)
        if adjusted is not None:  # the verdict used the adjusted p
            p += f"<br><small>adj. {escape(adjusted)}</small>"
        kind = "" if ch.kind == "pair" else f" <small>({escape(ch.kind)})</small>"
        note = pairing_note(c)
        pairing = "" if note is None else f'<div class="reason">{escape(note)}</div>'
        rows.append(
            f'<tr class="{cls}"><td>{escape(ch.suite or "–")}</td><td>{escape(c.metric)}</td>'
            f"<td>{escape(c.a)} vs {escape(c.b)}{kind}</td><td class=num>{_side(c.mean_a, c.sd_a, c.n_a)}</td>"
            f"<td class=num>{_side(c.mean_b, c.sd_b, c.n_b)}</td><td class=num>{diff}</td>"
            f"<td class=num>{ci}</td><td class=num>{p}</td><td class=num>{correlation(c, EN_DASH)}</td>"
            f'<td>{_verdict(ch)}<div class="reason">{escape(c.reason)}</div>{pairing}</td></tr>')
    head = ("<tr><th>suite</th><th>metric</th><th>a vs b</th><th>mean a ± sd</th><th>mean b ± sd</th>"
            "<th>b − a</th><th>CI of b − a</th><th>p</th><th>seed r</th><th>verdict</th></tr>")
    return f'<div class="scroll"><table class="verdicts">{head}{"".join(rows)}</table></div>'


# ---------------------------------------------------------------------------------------- per suite


def _variants(report: Report, suite: SuiteInfo) -> list[str]:
    seen = [suite.reference]
    names = [r.variant for r in report.runs if r.suite == suite.name]
    names += [c.comparison.b for c in report.checks if c.suite == suite.name and c.kind == "pair"]
    names += [p.variant for p in report.problems if p.suite == suite.name and p.variant != "*"]
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def _samples(report: Report, suite: SuiteInfo, variants: Sequence[str]) -> tuple[dict, dict]:
    from normreg.render.plots import Sample

    runs = sorted((r for r in report.runs if r.suite == suite.name), key=lambda r: r.seed)
    current: dict[str, dict[str, Sample]] = {}
    baseline: dict[str, dict[str, Sample]] = {}
    for m in (spec.name for spec in suite.metrics):
        for v in variants:
            mine = [r for r in runs if r.variant == v]
            if mine:
                current.setdefault(m, {})[v] = Sample(
                    tuple(r.metrics[m] for r in mine if r.ok and m in r.metrics),
                    failed_runs=sum(not r.ok for r in mine))
            stored = (suite.baseline_values or {}).get(v, {}).get(m)
            if stored:
                baseline.setdefault(m, {})[v] = Sample(tuple(stored[s] for s in sorted(stored)))
    if suite.baseline_values is None:  # an older report: only the baseline checks' summaries are known
        for c in report.checks:
            cmp = c.comparison
            if c.suite == suite.name and c.kind == "baseline" and cmp.mean_a is not None:
                baseline.setdefault(cmp.metric, {})[cmp.b] = Sample((), summary=(cmp.mean_a, cmp.sd_a, cmp.n_a))
    return current, baseline


def _curves(report: Report, suite: SuiteInfo, variants: Sequence[str]) -> dict[str, dict[str, list]]:
    curves: dict[str, dict[str, list]] = {}
    runs = sorted((r for r in report.runs if r.suite == suite.name), key=lambda r: r.seed)
    keys = sorted({k for r in runs for k in r.history if not k.endswith("_step")})
    for k in keys:
        for v in variants:
            seqs = [list(r.history[k]) for r in runs if r.variant == v and r.history.get(k)]
            if seqs:
                curves.setdefault(k, {})[v] = seqs
    return curves


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    if isinstance(value, (dict, list)):
        return f"<code>{escape(json.dumps(value, sort_keys=True))}</code>"
    return escape("" if value is None else str(value))


_FINDING_ORDER = ("severity", "check", "mode", "module", "module_type", "type", "layer", "message", "summary",
                  "evidence", "cause", "fix")


def audit_html(report: AuditReport | None) -> str:
    """An audit's findings as a table, with its other facts above (or the error that stopped it)."""
    if report is None:
        return ""
    facts = {k: v for k, v in report.to_json().items() if not isinstance(v, (list, dict))}
    extra = "<p class=meta>" + " · ".join(f"{escape(str(k))}: {_cell(v)}" for k, v in sorted(facts.items())) + "</p>"
    findings = [f.to_json() for f in report.findings]
    if not findings:
        return f"<h3>Audit</h3>{extra}<p>No findings.</p>"
    keys = [k for k in _FINDING_ORDER if any(k in f for f in findings)]
    keys += sorted({k for f in findings for k in f} - set(keys))
    rows = [f'<tr class="sev-{escape(f["severity"])}">' + "".join(f"<td>{_cell(f.get(k))}</td>" for k in keys)
            + "</tr>" for f in findings]
    head = "".join(f"<th>{escape(k)}</th>" for k in keys)
    return f"<h3>Audit</h3>{extra}<table><tr>{head}</tr>{''.join(rows)}</table>"


def environment_html(current: Mapping[str, Any], stored: Mapping[str, Any] | None,
                     differences: Mapping[str, Sequence[Any]]) -> str:
    """This run's environment beside the baseline's; rows that can change results and differ are marked."""
    values = {k: [current.get(k), (stored or {}).get(k)] for k in dict.fromkeys([*current, *(stored or {})])}
    for k, (then, now) in differences.items():
        values[k] = [now, then]
    differs = set(differences) | {k for k in COMPARED_KEYS if stored is not None and k in stored and k in current
                                  and stored[k] != current[k]}
    beside = stored is not None or bool(differences)
    rows = []
    for k, (now, then) in values.items():
        cells = f"<td>{escape(k)}{' ≠' if k in differs else ''}</td><td>{_cell(now)}</td>"
        cells += f"<td>{_cell(then)}</td>" if beside else ""
        rows.append(f'<tr class="{"diff" if k in differs else ""}">{cells}</tr>')
    head = "<tr><th>key</th><th>this run</th>" + ("<th>baseline</th>" if beside else "") + "</tr>"
    note = ""
    if differences:
        note = (f"<p><b>{OTHER_ENVIRONMENT.capitalize()}:</b> "
                f"{environment_changes({escape(k): v for k, v in differences.items()}, '→', _cell)}"
                ". Differences in these values can move results by themselves.</p>")
    return f"<h3>Environment</h3>{note}<table>{head}{''.join(rows)}</table>"


def _problems(problems: Sequence[Any]) -> str:
    if not problems:
        return ""
    items = []
    for g in group_problems(problems):
        cls = "v-xfail" if g.expected else "v-fail"
        items.append(f'<li class="{cls}"><code>{escape(describe(g))}</code></li>')
    return f"<h3>Problems</h3><ul>{''.join(items)}</ul>"


def curves_html(curves: Sequence[CurveCheck]) -> str:
    """Each curve check: its summary, the figure (mean ± sd per variant, parted epochs shaded), and its per-epoch
    differences with the intervals the verdicts used, folded."""
    from normreg.render.plots import curve_check_figure

    if not curves:
        return ""
    parts = ["<h3>Curve checks</h3><p class=meta>Each metric's learning curves, variant against reference, at "
             "every epoch; the chance of a false parted epoch is held at alpha over all epochs of a metric (the "
             "per-epoch level is shown). They inform unless the suite says "
             "<code>curves: {metrics: [...], fail: true}</code>.</p>"]
    for c in curves:
        cls = "v-fail" if c.failed else ("v-xfail" if c.parted else "v-ok")
        parts.append(f'<p class="{cls}">{escape(c.summary)}</p>')
        if not c.epochs:
            continue
        parts.append(curve_check_figure(c, f"curves of {c.metric}: {c.b} vs {c.a}"))
        rows = "".join(
            f'<tr class="{"fail" if e.verdict in ("regressed", "improved") else ""}"><td class=num>{i}</td>'
            f"<td class=num>{escape(mean_pm_sd(e.mean_a, e.sd_a, EN_DASH))}</td>"
            f"<td class=num>{escape(mean_pm_sd(e.mean_b, e.sd_b, EN_DASH))}</td>"
            f"<td class=num>{escape(signed(e.diff))}</td><td class=num>{escape(interval(e))}</td>"
            f"<td>{escape(verdict_shown(e))}</td></tr>" for i, e in enumerate(c.epochs, start=1))
        level_text = "" if c.level is None else f" at the per-epoch level {c.level:.3g}"
        parts.append(f"<details><summary>per-epoch differences{escape(level_text)} ({escape(c.design)}, "
                     f"min_effect {c.min_effect:g}, seeds {escape(', '.join(map(str, c.seeds)))})</summary>"
                     f"<table><tr><th>epoch</th><th>{escape(c.a)} mean ± sd</th><th>{escape(c.b)} mean ± sd</th>"
                     f"<th>diff</th><th>CI</th><th>verdict</th></tr>{rows}</table></details>")
        if c.note:
            parts.append(f"<p class=meta>{escape(c.note)}</p>")
    return "\n".join(parts)


def suite_html(report: Report, suite: SuiteInfo) -> str:
    from normreg.render.plots import curves_figure, seeds_figure

    variants = _variants(report, suite)
    metrics = [(m.name, m.goal) for m in suite.metrics]
    current, baseline = _samples(report, suite, variants)
    failed: dict[str, set[str]] = {}
    for c in report.checks:
        if c.suite == suite.name and c.failed:
            failed.setdefault(c.comparison.metric, set()).add(c.comparison.b)
    parts = [f'<h2 id="suite-{escape(suite.name)}">{escape(suite.name)}</h2>',
             f"<p class=meta><code>{escape(suite.path)}</code> · reference <b>{escape(suite.reference)}</b> · "
             f"seeds {escape(', '.join(map(str, suite.seeds)))} · alpha {suite.alpha:g} · baseline "
             f"{escape(suite.baseline or 'none stored')}" + (" (updated by this run)" if suite.baseline_updated else "")
             + "</p>"]
    checks = [c for c in report.checks if c.suite == suite.name]
    parts.append(_problems([p for p in report.problems if p.suite == suite.name]))
    if metrics and current:
        ci = f"{1 - suite.alpha:.0%}"
        parts.append(f"<h3>Per-seed results</h3><p class=meta>Filled dots: this run's seeds; bar: mean and {ci} "
                     "confidence interval; hollow grey dots: the stored baseline's seeds. Variants in red failed a "
                     "check.</p>")
        parts.append(seeds_figure(variants, metrics, current, baseline, failed, suite.alpha,
                                  f"per-seed values of {suite.name}"))
    curves = _curves(report, suite, variants)
    if curves:
        parts.append("<h3>Learning curves</h3><p class=meta>Per-epoch values logged during training, one line per "
                     "seed.</p>")
        parts.append(curves_figure(variants, curves, title=f"learning curves of {suite.name}"))
    parts.append(curves_html([c for c in report.curves if c.suite == suite.name]))
    parts.append(audit_html(suite.audit))
    changed = dict(first_per_suite(checks, lambda c: c.suite_changes)).get(suite.name, ())
    if changed:
        parts.append(f"<p class=meta><b>{escape(SUITE_CHANGED.capitalize())}:</b> {escape(summarise(changed))}.</p>")
    parts += [f"<p class=meta><b>Resumed:</b> {escape(n)}.</p>" for n in resumed_notes(report.runs, suite.name)]
    diffs = dict(first_per_suite(checks, lambda c: c.environment_differences)).get(suite.name, {})
    parts.append(environment_html(report.environment, suite.baseline_environment, diffs))
    return "\n".join(p for p in parts if p)


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page."""
    n_failed = sum(c.failed for c in report.checks)
    n_xfail = sum(c.expected_failure for c in report.checks)
    commit = report.environment.get("git_commit")
    body = [f"<h1>normreg report {_badge(report.verdict)}</h1>",
            f"<p class=meta>{escape(report.command)} · {escape(report.created)}"
            + (f" · commit <code>{escape(str(commit)[:12])}</code>" if commit else "")
            + f" · {len(report.checks)} comparisons, {n_failed} failed, {n_xfail} known bugs caught as expected"
            + f" · exit code {report.exit_code}</p>"]
    if report.suites:
        body.append("<p>" + " · ".join(f'<a href="#suite-{escape(s.name)}">{escape(s.name)}</a>'
                                       for s in report.suites) + "</p>")
    body.append("<h2>Verdicts</h2>")
    body.append(verdict_table(report.checks) if report.checks else "<p>No comparisons.</p>")
    body.append(_problems([p for p in report.problems if p.suite not in {s.name for s in report.suites}]))
    for s in report.suites:
        body.append(suite_html(report, s))
    body.append(curves_html([c for c in report.curves if c.suite not in {s.name for s in report.suites}]))
    if not report.suites:
        body.append(environment_html(report.environment, None, {}))
    return _page(f"normreg report: {report.verdict}", body)


# ------------------------------------------------------------------------------------------- history


def render_history_html(history: History) -> str:
    """Metrics across nights: one figure per suite and metric, then the table of nights."""
    from normreg.render.history import METHOD, ad_hoc_line, change_summary, night_marks
    from normreg.render.plots import history_figure

    labels = [n.label for n in history.nights]
    body = [f"<h1>normreg history</h1><p class=meta>{len(history.nights)} reports, "
            f"{escape(history.nights[0].created)} to {escape(history.nights[-1].created)}. Red rings mark nights "
            "on which a check of that variant failed; dashed lines the changes found (ruptures PELT on the per-seed "
            "values, each confirmed at the suite's alpha and beyond min_effect by a test whose unit is the distinct "
            f"night; {escape(METHOD)}). A change that came with a new environment (torch, device, threads) says "
            "so.</p>"]
    for (suite, metric), group in history.grouped().items():
        body.append(f"<h2>{escape(suite)}: {escape(metric)}</h2>")
        marks = [(s.variant, c.night, c.verdict) for s in group for c in s.changes]
        body.append(history_figure(f"{suite}: {metric}", group[0].goal, labels, {s.variant: s.points for s in group},
                                   marks))
        body += [f"<p class=change>{escape(s.variant)}: {escape(change_summary(history, c))}</p>"
                 for s in group for c in s.changes]
    rows = []
    for n in history.nights:
        failed = ", ".join(n.failed_checks) or "–"
        rows.append(f'<tr class="{"fail" if n.verdict != "pass" else ""}"><td>{escape(n.created + night_marks(n))}</td>'
                    f"<td><code>{escape(n.commit or '–')}</code></td><td>{escape(n.verdict)}</td>"
                    f"<td>{escape(failed)}</td><td><code>{escape(n.source)}</code></td></tr>")
    body.append("<h2>Nights</h2><table><tr><th>created</th><th>commit</th><th>verdict</th><th>failed checks</th>"
                f"<th>report</th></tr>{''.join(rows)}</table>")
    if history.ad_hoc:
        body.append(f"<p class=meta>{escape(ad_hoc_line(history.ad_hoc))}</p>")
    return _page("normreg history", body)
