"""What an audit reports: findings (severity, module, evidence, fix), pair summaries, and their JSON and text forms.

Schema `normreg.audit/1`. Nothing here imports torch, so reading or rendering a report is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from normreg.errors import ExitCode
from normreg.fileio import clean_json, write_json_atomic
from normreg.version import __version__

SCHEMA = "normreg.audit/1"
Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

@dataclass(frozen=True)
class Finding:
    """One thing the audit saw: which check, how bad, where (module qualified name and type), the numbers, the fix."""

    check: str
    severity: Severity
    variant: str
    module: str  # qualified name in the LightningModule; "[Type].sub" for a module built outside it
    module_type: str
    message: str
    evidence: Mapping[str, Any]
    fix: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "variant": self.variant, "module": self.module,
                "module_type": self.module_type, "message": self.message, "evidence": clean_json(dict(self.evidence)),
                "fix": self.fix}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Finding:
        return cls(check=d["check"], severity=d["severity"], variant=d["variant"], module=d["module"],
                   module_type=d["module_type"], message=d["message"], evidence=dict(d.get("evidence") or {}),
                   fix=d["fix"])


@dataclass(frozen=True)
class ModeSummary:
    """One training step of the reference and of a variant, in one mode, on the same batch and the same weights."""

    mode: str  # "train" | "eval"
    loss_reference: float | None
    loss_variant: float | None
    grad_diff: float | None  # ||g_ref - g_var|| / ||g_ref|| over parameters both have
    stats_diff: float | None  # largest relative difference of a buffer (running statistics) after the step
    stats_worst: str | None
    modules_compared: int
    first_divergence: str | None  # qualified name of the first module, in forward order, whose outputs differ
    first_divergence_type: str | None
    cause: str | None
    error: str | None = None  # the step could not be run

    @property
    def identical(self) -> bool:
        return self.error is None and self.first_divergence is None and not _differs(self.loss_reference,
                                                                                     self.loss_variant)

    def to_json(self) -> dict[str, Any]:
        return clean_json({"mode": self.mode, "loss_reference": self.loss_reference, "loss_variant": self.loss_variant,
                       "grad_diff": self.grad_diff, "stats_diff": self.stats_diff, "stats_worst": self.stats_worst,
                       "modules_compared": self.modules_compared, "first_divergence": self.first_divergence,
                       "first_divergence_type": self.first_divergence_type, "cause": self.cause,
                       "identical": self.identical, "error": self.error})

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModeSummary:
        return cls(mode=d["mode"], loss_reference=d.get("loss_reference"), loss_variant=d.get("loss_variant"),
                   grad_diff=d.get("grad_diff"), stats_diff=d.get("stats_diff"), stats_worst=d.get("stats_worst"),
                   modules_compared=int(d.get("modules_compared") or 0), first_divergence=d.get("first_divergence"),
                   first_divergence_type=d.get("first_divergence_type"), cause=d.get("cause"), error=d.get("error"))


@dataclass(frozen=True)
class PairSummary:
    reference: str
    variant: str
    modes: tuple[ModeSummary, ...]
    state_copied: int  # tensors copied from the reference's state where names and shapes match
    state_unmatched: int

    def to_json(self) -> dict[str, Any]:
        return {"reference": self.reference, "variant": self.variant, "modes": [m.to_json() for m in self.modes],
                "state_copied": self.state_copied, "state_unmatched": self.state_unmatched}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PairSummary:
        return cls(reference=d["reference"], variant=d["variant"],
                   modes=tuple(ModeSummary.from_json(m) for m in d.get("modes", ())),
                   state_copied=int(d.get("state_copied") or 0), state_unmatched=int(d.get("state_unmatched") or 0))


@dataclass(frozen=True)
class AuditReport:
    """The findings of one audit of a suite; or, with `error`, why the audit could not run (as `run` records it)."""

    suite: str
    path: str = ""
    digest: str = ""
    reference: str = ""
    variants: tuple[str, ...] = ()
    seed: int = 0
    created: str = ""
    duration_s: float = 0.0
    findings: tuple[Finding, ...] = ()
    pairs: tuple[PairSummary, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be examined, and why
    checks: tuple[str, ...] = ()  # the checks run, in order (normreg.auditing.checks registers them)
    error: str | None = None  # the audit could not run; nothing else is known

    @property
    def verdict(self) -> str:
        """"error" when any finding is an error, else "clean" (warnings and information do not fail)."""
        return "error" if any(f.severity == "error" for f in self.findings) else "clean"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.FAIL if self.verdict == "error" else ExitCode.PASS

    def errors_for(self, variant: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.variant == variant and f.severity == "error")

    @classmethod
    def from_json(cls, d: Mapping[str, Any], suite: str = "") -> AuditReport:
        """Read an audit back (`normreg audit --report`, or a report's `suites[].audit`); `suite` names the suite
        of an audit that could not run, whose JSON holds only the error."""
        if d.get("error") is not None:
            return cls(suite=d.get("suite", suite), error=str(d["error"]))
        return cls(suite=d["suite"], path=d.get("path", ""), digest=d.get("digest", ""),
                   reference=d.get("reference", ""), variants=tuple(d.get("variants", ())), seed=int(d.get("seed", 0)),
                   created=d.get("created", ""), duration_s=float(d.get("duration_s", 0.0)),
                   findings=tuple(Finding.from_json(f) for f in d.get("findings", ())),
                   pairs=tuple(PairSummary.from_json(p) for p in d.get("pairs", ())),
                   notes=tuple(d.get("notes", ())), checks=tuple(d.get("checks", ())))

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"schema": SCHEMA, "error": self.error}
        return {
            "schema": SCHEMA,
            "normreg_version": __version__,
            "command": "audit",
            "created": self.created,
            "duration_s": round(self.duration_s, 3),
            "suite": self.suite,
            "path": self.path,
            "digest": self.digest,
            "reference": self.reference,
            "variants": list(self.variants),
            "seed": self.seed,
            "checks": list(self.checks),
            "verdict": self.verdict,
            "exit_code": int(self.exit_code),
            "counts": {s: sum(f.severity == s for f in self.findings) for s in SEVERITIES},
            "findings": [f.to_json() for f in self.findings],
            "pairs": [p.to_json() for p in self.pairs],
            "notes": list(self.notes),
        }

    def write(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())


def _differs(a: float | None, b: float | None, rtol: float = 1e-4) -> bool:
    if a is None or b is None:
        return a is not b
    return abs(a - b) > rtol * max(abs(a), abs(b), 1e-8)



def sort_findings(findings: Sequence[Finding], checks: Sequence[str] = ()) -> tuple[Finding, ...]:
    """Errors first, then by variant, the checks' order and module."""
    rank = {c: i for i, c in enumerate(checks)}
    return tuple(sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), f.variant,
                                                 rank.get(f.check, len(rank)), f.module)))
