"""The frozen drift check: running statistics of frozen modules that drift because they run in train mode."""

from __future__ import annotations

import torch
from torch import nn

from normreg.auditing.checks.frozen_drift import frozen_modules
from tests.auditing.helpers import audited, findings


def test_frozen_batchnorm_in_train_mode_drifts() -> None:
    r = audited("audit_frozen")
    (f,) = findings(r, "frozen_drift", "buggy")
    assert f.severity == "error" and f.module == "backbone.body.1"
    assert f.evidence["batches_tracked"] == [0, 3] and "running_mean" in f.evidence["buffers_changed"]
    assert not findings(r, "frozen_drift", "fixed")


def test_parameters_no_optimizer_updates_count_as_frozen() -> None:
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    opt = torch.optim.SGD(net[2].parameters(), lr=0.1)
    assert set(frozen_modules(net, [opt])) == {"0", "1"}
    assert set(frozen_modules(net, [torch.optim.SGD(net.parameters(), lr=0.1)])) == set()
