"""The check for train mode where nothing trains: BatchNorm (and dropout) in train mode while acting, serving or
predicting."""

from __future__ import annotations

import torch
from torch import nn

from normreg.auditing.checks.train_mode_without_training import train_mode_without_training
from normreg.auditing.record import Recorder, module_names
from tests.auditing.helpers import audited, findings


def test_dropout_in_train_mode_is_named_as_dropout_not_batch_dependence() -> None:
    r = audited("audit_plain_dropout")
    (f,) = findings(r, "train_mode_without_training", "actor")
    assert (f.module, f.module_type, f.severity) == ("policy.2", "Dropout", "error")
    assert "per-example randomness, not a dependence on the other examples" in f.message
    assert "dropout" in f.fix and "BatchNorm" not in f.fix
    assert findings(r, "batch_independence", "actor") == []
    assert not any("BatchNorm" in x.message for x in r.findings)


def test_rollouts_in_train_mode_are_flagged_with_values_per_channel() -> None:
    r = audited("audit_actor")
    (f,) = findings(r, "train_mode_without_training", "train_act")
    assert f.severity == "error" and f.module == "policy.1" and f.module_type == "BatchNorm1d"
    assert f.evidence["paths"] == ["train_dataloader"] and f.evidence["values_per_channel"] == [4, 4]
    assert f.evidence["gradients"] is False and "in act" in f.evidence["called_from"][0]
    # the user's frames only: not the audit's, the command line's or the test runner's that drove them
    assert all(frame.startswith("audit_models.py:") for where in f.evidence["called_from"]
               for frame in where.split(" < ")), f.evidence["called_from"]
    assert "each of 4 examples against the other 3" in f.message and "running statistics" in f.message
    assert not findings(r, "train_mode_without_training", "eval_act")
    assert not findings(r, "train_mode_without_training", "layer_train_act")  # LayerNorm has no train mode trap


def test_serving_single_examples_in_train_mode_is_flagged() -> None:
    r = audited("audit_frozen")
    (f,) = findings(r, "train_mode_without_training", "buggy")
    assert f.module == "backbone.body.1" and f.evidence["paths"] == ["test_step"]
    assert f.evidence["rows"] == [1, 1] and f.evidence["values_per_channel"] == [36, 36]
    assert "single example over its own 36 positions" in f.message
    assert not findings(r, "train_mode_without_training", "fixed")


def test_batchnorm_without_running_statistics_is_flagged_even_in_eval_mode() -> None:
    for track, fires in ((False, True), (True, False)):
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=track)).eval()
        with torch.no_grad(), Recorder(module_names(net)) as rec:
            net(torch.randn(5, 3))
        found = train_mode_without_training({"predict_step": rec.calls}, "v")
        assert bool(found) == fires
        if fires:
            assert "1 normalises with batch statistics (track_running_stats=False)" in found[0].message
