"""The audit's test suites and helpers shared by its tests.

Models live in data/suites/audit_models.py, written as plain user Lightning code; the suites beside it pair them."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from normreg.auditing import AuditReport, audit_suite

SUITES = Path(__file__).parents[1] / "data" / "suites"


@functools.cache
def audited(name: str) -> AuditReport:
    """The test suite `name` audited once per session (about 0.1 s each once torch and Lightning are imported);
    reports are frozen, so the tests share them."""
    return audit_suite(SUITES / f"{name}.yaml")


def findings(report: AuditReport, check: str, variant: str, severity: str | None = None) -> list:
    return [f for f in report.findings if f.check == check and f.variant == variant
            and (severity is None or f.severity == severity)]


def mode(report: AuditReport, variant: str, name: str):
    pair = next(p for p in report.pairs if p.variant == variant)
    return next(m for m in pair.modes if m.mode == name)


class BatchCentre(nn.Module):
    """Not a norm layer, yet batch dependent: subtracts the batch mean. Found by its outputs, not its type."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0)
