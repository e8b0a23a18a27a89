"""normreg audit: each check fires on a small hand-built model with the trap and stays quiet on one without.

Models live in data/suites/audit_models.py, written as plain user Lightning code; the suites beside it pair them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from normreg.auditing import SCHEMA, AuditReport, audit_suite
from normreg.auditing.checks.batch_independence import batch_independence
from normreg.auditing.checks.frozen_drift import frozen_modules
from normreg.auditing.checks.heterogeneous_normalisation import heterogeneous_normalisation
from normreg.auditing.checks.per_source_statistics import per_source_statistics
from normreg.auditing.checks.train_mode_without_training import train_mode_without_training
from normreg.auditing.divergence import first_divergence, match_rows
from normreg.auditing.record import Recorder, module_names
from normreg.errors import InputError, SuiteError
from normreg.render.audit import render_audit

SUITES = Path(__file__).parent / "data" / "suites"


@pytest.fixture(scope="module")
def audited() -> dict[str, AuditReport]:
    """Each test suite audited once (about 0.1 s each once torch and Lightning are imported)."""
    cache: dict[str, AuditReport] = {}

    def get(name: str) -> AuditReport:
        if name not in cache:
            cache[name] = audit_suite(SUITES / f"{name}.yaml")
        return cache[name]

    return get  # type: ignore[return-value]


def findings(report: AuditReport, check: str, variant: str, severity: str | None = None) -> list:
    return [f for f in report.findings if f.check == check and f.variant == variant
            and (severity is None or f.severity == severity)]


def mode(report: AuditReport, variant: str, name: str):
    pair = next(p for p in report.pairs if p.variant == variant)
    return next(m for m in pair.modes if m.mode == name)


# ------------------------------------------------------------------------------------ the registry


def test_every_check_is_registered_once_in_order_and_reports_list_them(audited) -> None:
    from normreg.auditing.checks import all_checks

    names = [c.name for c in all_checks()]
    assert names == ["pair_divergence", "batch_independence", "train_mode_without_training", "frozen_drift",
                     "per_source_statistics", "unsynced_batchnorm", "heterogeneous_normalisation"]
    assert audited("audit_pair").checks == tuple(names)


def test_a_new_check_is_one_registered_function(monkeypatch) -> None:
    from normreg.auditing import checks
    from normreg.auditing.findings import Finding

    checks.CHECKS.names()  # every file of the package registered; the test's check is added to a copy
    monkeypatch.setattr(checks.CHECKS, "_parts", dict(checks.CHECKS._parts))

    @checks.register("counts_modules")
    def count(rec: checks.Recordings) -> list[Finding]:
        """Counts modules: a check added by one registration."""
        return [Finding("counts_modules", "info", rec.variant, "(model)", "-", f"{len(rec.names)} modules", {}, "-")]

    report = audit_suite(SUITES / "audit_plain_dropout.yaml")
    assert report.checks[-1] == "counts_modules"
    assert [f.message for f in report.findings if f.check == "counts_modules"] == ["6 modules"]


# ----------------------------------------------------------- models without BatchNorm, in another style


def test_dropout_in_train_mode_is_named_as_dropout_not_batch_dependence(audited) -> None:
    r = audited("audit_plain_dropout")
    (f,) = findings(r, "train_mode_without_training", "actor")
    assert (f.module, f.module_type, f.severity) == ("policy.2", "Dropout", "error")
    assert "per-example randomness, not a dependence on the other examples" in f.message
    assert "dropout" in f.fix and "BatchNorm" not in f.fix
    assert findings(r, "batch_independence", "actor") == []
    assert not any("BatchNorm" in x.message for x in r.findings)


def test_a_variant_with_its_own_data_is_compared_under_it(audited) -> None:
    r = audited("audit_plain_data")
    (f,) = findings(r, "pair_divergence", "shifted")
    assert (f.module, f.severity) == ("(data)", "error")
    assert "its own data (plain_models:Points with shift=1.0)" in f.message and "variants.shifted.data" in f.fix
    assert not mode(r, "shifted", "train").identical
    assert mode(r, "same", "train").identical and findings(r, "pair_divergence", "same") == []


def test_norms_under_different_names_are_named_not_the_next_shared_module(audited) -> None:
    r = audited("audit_plain_names")
    train = mode(r, "state", "train")
    assert (train.first_divergence, train.first_divergence_type) == ("pos_norm", "LayerNorm")
    assert train.cause.startswith("no counterpart: pos runs pos_norm (LayerNorm) and state runs state_norm (RMSNorm)")
    assert "outputs differ from body.0 (Linear) on" in train.cause
    (f,) = findings(r, "pair_divergence", "state", "error")
    assert "pos_norm" in f.message and "state_norm" in f.message


# ------------------------------------------------------------------------------------ 1. pair divergence


def test_twin_towers_diverge_at_the_first_batchnorm_in_train_mode_only(audited) -> None:
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


def test_rows_are_matched_not_positions(audited) -> None:
    # The same rows in the other order reach every layer at other positions: still the same computation.
    r = audited("audit_pair")
    assert mode(r, "reversed", "train").identical and mode(r, "reversed", "eval").identical
    assert not findings(r, "pair_divergence", "reversed")


def test_layernorm_control_is_identical_and_a_loss_weighting_is_information(audited) -> None:
    r = audited("audit_pair_layer")
    assert all(m.identical for m in next(p for p in r.pairs if p.variant == "twin").modes)
    assert not findings(r, "pair_divergence", "twin")
    (f,) = findings(r, "pair_divergence", "weighted")
    assert f.severity == "info" and "only the loss differs" in f.message
    assert mode(r, "weighted", "train").first_divergence is None
    assert r.exit_code == 0 and not any(f.severity == "error" for f in r.findings)


def test_a_frozen_backbone_in_train_mode_diverges_by_mode(audited) -> None:
    r = audited("audit_frozen")
    train = mode(r, "buggy", "train")
    assert train.first_divergence == "backbone.body.1" and train.cause.startswith("mode: fixed runs it in eval")
    assert mode(r, "buggy", "eval").identical


def test_inputs_changed_outside_any_module_are_named_as_such(audited) -> None:
    r = audited("audit_robot")
    assert mode(r, "joint", "eval").cause.startswith("its inputs already differ")


def test_a_step_that_needs_a_trainer_is_reported_not_fatal(audited) -> None:
    r = audited("audit_robot")
    (f,) = findings(r, "pair_divergence", "needs_trainer")
    assert f.severity == "warning" and "not attached to a `Trainer`" in f.message
    assert any("needs_trainer: training_step raised RuntimeError" in n for n in r.notes)


def test_match_rows_recovers_a_permutation_and_refuses_other_rows() -> None:
    a = torch.randn(10, 3)
    perm = torch.randperm(10)
    b = torch.empty_like(a)
    b[perm] = a
    assert torch.equal(b[match_rows(a, b)], a)
    assert match_rows(a, b + 1.0) is None
    assert match_rows(a, a[:5]) is None


# ---------------------------------------------------------------------------------- 2. batch independence


class BatchCentre(nn.Module):
    """Not a norm layer, yet batch dependent: subtracts the batch mean. Found by its outputs, not its type."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(0)


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


def test_acting_in_train_mode_inside_the_train_dataloader_is_caught(audited) -> None:
    r = audited("audit_actor")
    (f,) = findings(r, "batch_independence", "train_act", "error")
    assert f.module == "policy.1" and f.evidence["path"] == "train_dataloader" and f.evidence["rows"] == 4
    assert not findings(r, "batch_independence", "eval_act", "error")


# ----------------------------------------------------------------------- 3. train mode where nothing trains


def test_rollouts_in_train_mode_are_flagged_with_values_per_channel(audited) -> None:
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


def test_serving_single_examples_in_train_mode_is_flagged(audited) -> None:
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


# --------------------------------------------------------------------------------------- 4. frozen drift


def test_frozen_batchnorm_in_train_mode_drifts(audited) -> None:
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


# ------------------------------------------------------------------------------- 5. per-source statistics


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


def test_per_source_statistics_in_a_suite(audited) -> None:
    assert findings(audited("audit_pair"), "per_source_statistics", "twin", "warning")
    assert not findings(audited("audit_pair"), "per_source_statistics", "merged")


# ------------------------------------------------------------------------- 6. heterogeneous normalisation


def test_positions_and_velocities_normalised_together_are_flagged(audited) -> None:
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


# ---------------------------------------------------------------------------- divergence on hand recordings


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


# -------------------------------------------------------------------------------- report, JSON and the CLI


def test_json_report_is_versioned_sorted_and_complete(audited, tmp_path: Path) -> None:
    r = audited("audit_pair")
    path = tmp_path / "audit.json"
    r.write(path)
    text = path.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert data["schema"] == SCHEMA == "normreg.audit/1"
    assert data["verdict"] == "error" and data["exit_code"] == 1 and data["counts"]["error"] == 1
    f = next(f for f in data["findings"] if f["check"] == "pair_divergence")
    assert set(f) == {"check", "severity", "variant", "module", "module_type", "message", "evidence", "fix"}
    assert [m["mode"] for m in data["pairs"][0]["modes"]] == ["train", "eval"]
    assert data["findings"][0]["severity"] == "error"  # errors first


def test_render_names_the_guilty_layer(audited) -> None:
    text = render_audit(audited("audit_pair"))
    assert "merged -> twin" in text and "net.1 (BatchNorm1d); cause: batch composition" in text
    assert text.rstrip().endswith("Outcome: ERROR (exit 1)")


def test_unknown_variant_is_bad_input() -> None:
    with pytest.raises(InputError, match=r"unknown variant 'twn'. Did you mean 'twin'\? Variants: merged, twin"):
        audit_suite(SUITES / "audit_pair.yaml", variants=["twn"])
    with pytest.raises(SuiteError, match="no such suite file"):
        audit_suite(SUITES / "nope.yaml")


def test_variant_option_audits_only_that_pair(audited) -> None:
    r = audit_suite(SUITES / "audit_pair.yaml", variants=["reversed"])
    assert r.variants == ("merged", "reversed") and r.exit_code == 0


@pytest.mark.parametrize("suite,code", [("audit_pair", 1), ("audit_pair_layer", 0)])
def test_cli_exit_codes(cli, tmp_path: Path, suite: str, code: int) -> None:
    out = tmp_path / "a.json"
    result = cli("audit", SUITES / f"{suite}.yaml", "--report", out)
    assert result.exit_code == code, result.output
    assert json.loads(out.read_text())["exit_code"] == code
    assert f"Report: {out}" in result.output


def test_cli_bad_input_exits_2(cli) -> None:
    result = cli("audit", SUITES / "audit_pair.yaml", "--variant", "nope")
    assert result.exit_code == 2
    assert "InputError: " in result.output and "unknown variant 'nope'" in result.output


# ------------------------------------------------------------------------------- the hook in `normreg run`


def test_run_attaches_the_audit_to_a_failing_pair(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites
    from normreg.render.terminal import render

    script = {"merged": {"acc": [0.90, 0.91]}, "twin": {"acc": [0.80, 0.81]}, "reversed": {"acc": [0.90, 0.91]}}
    report = run_suites([SUITES / "audit_pair.yaml"], executor=FakeRunner(script), out=tmp_path / "run",
                        baselines=tmp_path / "b", audit=True)
    (info,) = report.suites
    assert isinstance(info.audit, AuditReport) and info.audit.variants == ("merged", "twin")
    assert report.to_json()["suites"][0]["audit"]["schema"] == SCHEMA
    assert report.to_json()["suites"][0]["audit"]["findings"][0]["module"] == "net.1"
    assert "Likely cause (normreg audit, no training):\n  audit_pair/twin: [pair_divergence] net.1 (BatchNorm1d)" \
        in render(report)
    from normreg.render.html import render_html
    from normreg.report.file import report_from_json

    back = report_from_json(json.loads(json.dumps(report.to_json())))
    assert back.audit("audit_pair").to_json() == info.audit.to_json()  # survives the JSON round trip
    assert "<h3>Audit</h3>" in render_html(back.report)


def test_run_survives_an_audit_that_cannot_run(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nseeds: 2\nmetrics: {acc: {}}\nvariants:\n  a: {model: no_such_module:M}\n"
                     "  b: {model: no_such_module:M}\n")
    report = run_suites([suite], executor=FakeRunner({"a": {"acc": [0.9, 0.91]}, "b": {"acc": [0.5, 0.51]}}),
                        out=tmp_path / "run", baselines=tmp_path / "b", audit=True)
    assert "cannot import module 'no_such_module'" in report.suites[0].audit.error
    assert report.to_json()["suites"][0]["audit"] == {"schema": SCHEMA, "error": report.suites[0].audit.error}
    assert report.verdict == "fail"


def test_run_with_a_fake_runner_does_not_audit_by_default(tmp_path: Path) -> None:
    from normreg.execution.fake import FakeRunner
    from normreg.pipeline import run_suites

    script = {"merged": {"acc": [0.90, 0.91]}, "twin": {"acc": [0.80, 0.81]}, "reversed": {"acc": [0.90, 0.91]}}
    report = run_suites([SUITES / "audit_pair.yaml"], executor=FakeRunner(script), out=tmp_path / "run",
                        baselines=tmp_path / "b")
    assert report.suites[0].audit is None
