"""The terminal form of `normreg audit`: the pair summary table, findings with evidence and fix, notes, outcome."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from normreg.auditing.findings import SEVERITIES, AuditReport
from normreg.render.labels import number, text_table


def _num(x: float | None) -> str:
    return number(x, 3)


def _evidence(ev: Mapping[str, Any]) -> str:
    parts = []
    for k, v in ev.items():
        if isinstance(v, float):
            v = _num(v)
        elif isinstance(v, (list, tuple)):
            v = "[" + ", ".join(_num(x) if isinstance(x, float) else str(x) for x in v) + "]"
        parts.append(f"{k}={v}")
    return ", ".join(parts)


def render_audit(report: AuditReport, width: int = 110) -> str:
    """The terminal form: pair summary table, findings (errors first) with evidence and fix, notes, outcome."""
    out = [f"normreg audit: suite {report.suite} ({report.path}), seed {report.seed}, reference "
           f"{report.reference}, {report.duration_s:.1f}s"]
    if report.pairs:
        rows = []
        for p in report.pairs:
            for m in p.modes:
                if m.error:
                    what = f"not run: {m.error}"
                elif m.first_divergence is not None:
                    what = f"{m.first_divergence} ({m.first_divergence_type}); cause: {(m.cause or '?').split(':')[0]}"
                elif m.identical:
                    what = "identical"
                else:
                    what = "every module agrees; only the loss differs"
                rows.append((f"{p.reference} -> {p.variant}", m.mode, _num(m.loss_reference), _num(m.loss_variant),
                             _num(m.grad_diff), _num(m.stats_diff), what))
        out.append("\nPair divergence (one training step, same weights, same batch):")
        out += text_table(("pair", "mode", "loss ref", "loss var", "grad diff", "stats diff", "first divergence"),
                          rows, indent="  ")
    if report.findings:
        counts = {s: sum(f.severity == s for f in report.findings) for s in SEVERITIES}
        out.append(f"\nFindings ({', '.join(f'{n} {s}' for s, n in counts.items() if n)}):")
        wrap = lambda label, text: textwrap.fill(text, width=width, initial_indent=f"    {label}",  # noqa: E731
                                                 subsequent_indent=" " * (4 + len(label)))
        for f in report.findings:
            out.append(f"  {f.severity.upper():7s} {f.check}  {f.variant}  {f.module} ({f.module_type})")
            out.append(wrap("", f.message))
            if f.evidence:
                out.append(wrap("evidence: ", _evidence(f.evidence)))
            out.append(wrap("fix: ", f.fix))
    else:
        out.append("\nNo findings.")
    if report.notes:
        out.append("\nNotes:")
        out += [textwrap.fill(n, width=width, initial_indent="  ", subsequent_indent="    ") for n in report.notes]
    out.append(f"\nOutcome: {report.verdict.upper()} (exit {report.exit_code})")
    return "\n".join(out)
