"""The batch independence check: a module whose outputs for one example depend on the other examples of the batch,
found by its outputs, not its type."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from normreg.auditing.checks.batch_independence import batch_independence
from normreg.auditing.record import module_names
from tests.auditing.helpers import BatchCentre, audited, findings


def _independence(net: nn.Module, training: bool, inference: bool = True) -> list:
    net.train(training)
    flags = {id(m): m.training for m in net.modules()}
    return batch_independence(net, (torch.randn(16, 4),), flags, variant="v", path="test_step",
                              names=module_names(net), inference=inference)


@pytest.mark.parametrize("norm,training,fires", [
    (nn.BatchNorm1d, False, False), (nn.BatchNorm1d, True, True), (nn.LayerNorm, True, False),
    (nn.LayerNorm, False, False), (lambda w: BatchCentre(), False, True),
], ids=["batchnorm-eval", "batchnorm-train", "layernorm-train", "layernorm-eval", "custom-batch-centre"])
def test_batch_independence(norm, training: bool, fires: bool) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), norm(8), nn.ReLU(), nn.Linear(8, 2))
    found = _independence(net, training)
    assert bool(found) == fires
    if fires:
        (f,) = found
        assert f.severity == "error" and f.module == "1" and f.evidence["output_change"] > 1e-3


def test_batch_independence_names_each_responsible_batchnorm_and_restores_state() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    (f,) = _independence(net, True, inference=False)
    assert f.severity == "info" and f.evidence["responsible"] == ["1", "4"]
    assert f.evidence["single_example"].startswith("raises ValueError: Expected more than 1 value per channel")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_acting_in_train_mode_inside_the_train_dataloader_is_caught() -> None:
    r = audited("audit_actor")
    (f,) = findings(r, "batch_independence", "train_act", "error")
    assert f.module == "policy.1" and f.evidence["path"] == "train_dataloader" and f.evidence["rows"] == 4
    assert not findings(r, "batch_independence", "eval_act", "error")


class DictInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))

    def forward(self, batch: dict) -> torch.Tensor:
        return self.net(batch["x"])


def test_batch_independence_slices_tensors_inside_a_dict() -> None:
    net = DictInput().train()
    flags = {id(m): m.training for m in net.modules()}
    (f,) = batch_independence(net, ({"x": torch.randn(16, 4)},), flags, variant="v", path="act",
                              names=module_names(net), inference=True)
    assert f.module == "net.1"
