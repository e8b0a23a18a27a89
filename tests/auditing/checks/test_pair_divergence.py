"""The pair divergence check: where a pair's computations part, in which mode, and why (batch composition, mode,
data, names, inputs changed outside any module)."""

from __future__ import annotations

from tests.auditing.helpers import audited, findings, mode


def test_a_variant_with_its_own_data_is_compared_under_it() -> None:
    r = audited("audit_plain_data")
    (f,) = findings(r, "pair_divergence", "shifted")
    assert (f.module, f.severity) == ("(data)", "error")
    assert "its own data (plain_models:Points with shift=1.0)" in f.message and "variants.shifted.data" in f.fix
    assert not mode(r, "shifted", "train").identical
    assert mode(r, "same", "train").identical and findings(r, "pair_divergence", "same") == []


def test_norms_under_different_names_are_named_not_the_next_shared_module() -> None:
    r = audited("audit_plain_names")
    train = mode(r, "state", "train")
    assert (train.first_divergence, train.first_divergence_type) == ("pos_norm", "LayerNorm")
    assert train.cause.startswith("no counterpart: pos runs pos_norm (LayerNorm) and state runs state_norm (RMSNorm)")
    assert "outputs differ from body.0 (Linear) on" in train.cause
    (f,) = findings(r, "pair_divergence", "state", "error")
    assert "pos_norm" in f.message and "state_norm" in f.message


def test_twin_towers_diverge_at_the_first_batchnorm_in_train_mode_only() -> None:
    r = audited("audit_pair")
    train, ev = mode(r, "twin", "train"), mode(r, "twin", "eval")
    assert ev.identical and ev.first_divergence is None
    assert (train.first_divergence, train.first_divergence_type) == ("net.1", "BatchNorm1d")
    assert train.cause.startswith("batch composition: merged normalises 1 call of 32 rows, twin 2 calls of 16, 16")
    assert train.grad_diff > 0.01 and train.stats_diff > 0.01
    (f,) = findings(r, "pair_divergence", "twin")
    assert f.severity == "error" and f.module == "net.1" and f.module_type == "BatchNorm1d"
    assert "identical in eval mode; in train mode the first divergence is net.1" in f.message
    assert "per-domain BatchNorm" in f.fix
    assert r.exit_code == 1


def test_rows_are_matched_not_positions() -> None:
    # The same rows in the other order reach every layer at other positions: still the same computation.
    r = audited("audit_pair")
    assert mode(r, "reversed", "train").identical and mode(r, "reversed", "eval").identical
    assert not findings(r, "pair_divergence", "reversed")


def test_layernorm_control_is_identical_and_a_loss_weighting_is_information() -> None:
    r = audited("audit_pair_layer")
    assert all(m.identical for m in next(p for p in r.pairs if p.variant == "twin").modes)
    assert not findings(r, "pair_divergence", "twin")
    (f,) = findings(r, "pair_divergence", "weighted")
    assert f.severity == "info" and "only the loss differs" in f.message
    assert mode(r, "weighted", "train").first_divergence is None
    assert r.exit_code == 0 and not any(f.severity == "error" for f in r.findings)


def test_a_frozen_backbone_in_train_mode_diverges_by_mode() -> None:
    r = audited("audit_frozen")
    train = mode(r, "buggy", "train")
    assert train.first_divergence == "backbone.body.1" and train.cause.startswith("mode: fixed runs it in eval")
    assert mode(r, "buggy", "eval").identical


def test_inputs_changed_outside_any_module_are_named_as_such() -> None:
    r = audited("audit_robot")
    assert mode(r, "joint", "eval").cause.startswith("its inputs already differ")


def test_a_step_that_needs_a_trainer_is_reported_not_fatal() -> None:
    r = audited("audit_robot")
    (f,) = findings(r, "pair_divergence", "needs_trainer")
    assert f.severity == "warning" and "not attached to a `Trainer`" in f.message
    assert any("needs_trainer: training_step raised RuntimeError" in n for n in r.notes)
