"""The per-source statistics check: one BatchNorm normalising sources with different statistics in separate calls."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normreg.auditing.checks.per_source_statistics import per_source_statistics
from normreg.auditing.record import Recorder, module_names
from tests.auditing.helpers import audited, findings


def _two_calls(xa: torch.Tensor, xb: torch.Tensor) -> list:
    bn = nn.BatchNorm1d(xa.shape[1])
    with Recorder(module_names(bn), capture=True) as rec:
        bn(xa)
        bn(xb)
    return rec.calls


def test_per_source_statistics_fire_on_different_sources_only() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    assert per_source_statistics(_two_calls(x[:128], x[128:]), "v", {}) == []
    (f,) = per_source_statistics(_two_calls(x[:128], 0.2 * x[128:] + 1.0), "v", {})
    assert f.severity == "warning" and f.evidence["calls"] == 2
    assert f.evidence["variance_ratio"] == pytest.approx(25, rel=0.3)  # 0.2 ** -2
    assert f.evidence["mean_shift_sd"] > 1


def test_per_source_statistics_in_a_suite() -> None:
    assert findings(audited("audit_pair"), "per_source_statistics", "twin", "warning")
    assert not findings(audited("audit_pair"), "per_source_statistics", "merged")
