"""The heterogeneous normalisation check: input features on different scales normalised together."""

from __future__ import annotations

import torch
from torch import nn

from normreg.auditing.checks.heterogeneous_normalisation import heterogeneous_normalisation
from normreg.auditing.record import Recorder, module_names
from tests.auditing.helpers import audited, findings


def test_positions_and_velocities_normalised_together_are_flagged() -> None:
    r = audited("audit_robot")
    (f,) = findings(r, "heterogeneous_normalisation", "joint")
    assert f.module == "net.0" and f.module_type == "LayerNorm" and f.evidence["ratio"] > 10
    assert not findings(r, "heterogeneous_normalisation", "split")  # same LayerNorms, features on one scale


def test_heterogeneous_normalisation_only_looks_at_input_features() -> None:
    x = torch.cat([0.01 * torch.randn(64, 2), 10 * torch.randn(64, 2)], dim=1)
    deep = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with torch.no_grad():
        deep[0].weight.copy_(torch.eye(4))
    with Recorder(module_names(deep), capture=True) as rec:
        deep(x)
    assert heterogeneous_normalisation(rec.calls, "v") == []  # after a layer with weights: not the input's scales
    first = nn.Sequential(nn.LayerNorm(4), nn.Linear(4, 4))
    with Recorder(module_names(first), capture=True) as rec:
        first(x)
    assert len(heterogeneous_normalisation(rec.calls, "v")) == 1
