"""normreg/auditing/divergence.py: rows matched, not positions; the first module whose outputs differ, on hand
recordings."""

from __future__ import annotations

import torch
from torch import nn

from normreg.auditing.divergence import first_divergence, match_rows
from normreg.auditing.record import Recorder, module_names
from tests.auditing.helpers import BatchCentre


def test_match_rows_recovers_a_permutation_and_refuses_other_rows() -> None:
    a = torch.randn(10, 3)
    perm = torch.randperm(10)
    b = torch.empty_like(a)
    b[perm] = a
    assert torch.equal(b[match_rows(a, b)], a)
    assert match_rows(a, b + 1.0) is None
    assert match_rows(a, a[:5]) is None


def test_first_divergence_finds_a_batch_dependent_custom_module() -> None:
    net = nn.Sequential(nn.Linear(4, 4), BatchCentre(), nn.Linear(4, 2))
    x = torch.randn(8, 4)
    names = module_names(net)
    with torch.no_grad(), Recorder(names, capture=True) as whole:
        net(x)
    with torch.no_grad(), Recorder(names, capture=True) as halves:
        net(x[:4])
        net(x[4:])
    first = first_divergence(whole.calls, halves.calls).first
    assert first.name == "1" and first.inputs_match and first.cause.startswith("batch composition")
