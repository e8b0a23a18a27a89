"""Pair divergence: one training step of the reference and of a variant, same weights, same batch, in train and
eval mode; the first module whose outputs differ and why, or the data when the variant brings its own."""

from __future__ import annotations

from collections.abc import Sequence

from normreg.auditing.checks import Recordings, register
from normreg.auditing.divergence import RTOL
from normreg.auditing.findings import Finding, ModeSummary, _differs

_FIX_COMPOSITION = ("Feed every source through the network in one call (concatenate the sub-batches before the "
                    "forward), or give each source its own BatchNorm (per-domain BatchNorm), or use "
                    "LayerNorm/GroupNorm, which do not depend on the batch.")
_FIX_MODE = ("Run the module in the same mode in both: keep a frozen part in eval mode for good (override train() "
             "to call .eval() on it), or replace its BatchNorm by a frozen BatchNorm.")
_FIX_OTHER = "Compare the two implementations at this module: the outputs differ from here on."


def pair_findings(variant: str, summaries: Sequence[ModeSummary], names: tuple[str, str]) -> list[Finding]:
    """Turn the per-mode summaries of one pair into findings (none when the two are identical)."""
    by = {m.mode: m for m in summaries}
    train, ev = by.get("train"), by.get("eval")
    evidence: dict[str, object] = {}
    for m in summaries:
        evidence[f"{m.mode}_loss"] = [m.loss_reference, m.loss_variant]
        evidence[f"{m.mode}_grad_diff"] = m.grad_diff
        evidence[f"{m.mode}_stats_diff"] = m.stats_diff
    failed = [m for m in summaries if m.error]
    if failed:
        return [Finding("pair_divergence", "warning", variant, "(model)", "-",
                        f"could not compare {names[0]} and {names[1]} in {failed[0].mode} mode: {failed[0].error}",
                        {}, "Make training_step runnable on the suite's first batch without a Trainer, or "
                            "audit with a suite whose variants share their data.")]
    a, b = names
    first = ev if ev is not None and ev.first_divergence is not None else train
    if first is not None and first.cause and first.cause.startswith("different modules"):
        return [Finding("pair_divergence", "info", variant, first.first_divergence or "-",
                        first.first_divergence_type or "-",
                        f"{b} is built from other modules than {a}: the first module whose outputs differ, "
                        f"{first.first_divergence}, is {first.cause[len('different modules '):]}; the two are not "
                        "meant to compute the same thing, so their divergence is by design", evidence,
                        "Nothing to fix; compare variants built from the same modules to find implementation "
                        "differences.")]
    if ev is not None and ev.first_divergence is not None:
        fix = _FIX_MODE if ev.cause and ev.cause.startswith("mode") else _FIX_OTHER
        return [Finding("pair_divergence", "error", variant, ev.first_divergence, ev.first_divergence_type or "-",
                        f"{b} differs from {a} even in eval mode: the first module whose outputs differ is "
                        f"{ev.first_divergence} ({ev.first_divergence_type}); cause: {ev.cause}", evidence, fix)]
    if train is not None and train.first_divergence is not None:
        eval_text = "identical in eval mode" if ev is not None and ev.identical else \
            "every module agrees in eval mode" if ev is not None else "eval mode not compared"
        if train.cause and train.cause.startswith("batch composition"):
            fix = _FIX_COMPOSITION
        elif train.cause and train.cause.startswith("mode"):
            fix = _FIX_MODE
        else:
            fix = _FIX_OTHER
        return [Finding("pair_divergence", "error", variant, train.first_divergence,
                        train.first_divergence_type or "-",
                        f"{b} vs {a}: {eval_text}; in train mode the first divergence is {train.first_divergence} "
                        f"({train.first_divergence_type}); cause: {train.cause}", evidence, fix)]
    loss_differs = [m for m in summaries if _differs(m.loss_reference, m.loss_variant)]
    if loss_differs:
        m = loss_differs[0]
        return [Finding("pair_divergence", "info", variant, "(loss)", "-",
                        f"every module's outputs agree between {a} and {b}; only the loss differs ({m.mode} mode: "
                        f"{m.loss_reference:.6g} vs {m.loss_variant:.6g}), e.g. a different weighting in its "
                        "reduction", evidence, "Nothing to fix if the weighting is intended.")]
    grads = [m for m in summaries if m.grad_diff is not None and m.grad_diff > RTOL]
    if grads:
        m = grads[0]
        return [Finding("pair_divergence", "warning", variant, "(gradients)", "-",
                        f"outputs and loss agree between {a} and {b} but the gradients differ by {m.grad_diff:.3g} "
                        f"(relative, {m.mode} mode): a detach or a stop-gradient differs", evidence,
                        "Look for .detach(), torch.no_grad() or requires_grad differences between the two.")]
    stats = [m for m in summaries if m.stats_diff is not None and m.stats_diff > RTOL]
    if stats:
        m = stats[0]
        return [Finding("pair_divergence", "warning", variant, m.stats_worst or "-", "buffer",
                        f"outputs, loss and gradients agree between {a} and {b}, but after the step {m.stats_worst} "
                        f"differs by {m.stats_diff:.3g} (relative): one of them runs a BatchNorm an extra time or "
                        "on other rows", evidence, "Make both run the same forward passes in train mode.")]
    return []


@register("pair_divergence")
def check(rec: Recordings) -> list[Finding]:
    """Pair divergence: where a variant's training step first differs from the reference's, and why."""
    if rec.pair is None:
        return []
    names = (rec.pair.reference, rec.pair.variant)
    if rec.data_note is not None:
        return [data_finding(rec.variant, rec.pair.modes, names, rec.data_note)]
    return pair_findings(rec.variant, rec.pair.modes, names)


def data_finding(variant: str, summaries: Sequence[ModeSummary], names: tuple[str, str], note: str) -> Finding:
    """A variant with its own data, compared under it: the data is where the pair parts ways."""
    a, b = names
    losses = "; ".join(f"{m.mode} loss {m.loss_reference:.6g} vs {m.loss_variant:.6g}" for m in summaries
                       if m.loss_reference is not None and m.loss_variant is not None)
    return Finding("pair_divergence", "error", variant, "(data)", "data",
                   f"{b} differs from {a} by its data: {note}" + (f" ({losses})" if losses else ""),
                   {m.mode + "_loss": [m.loss_reference, m.loss_variant] for m in summaries},
                   f"If the two should see the same data, remove the override at variants.{b}.data; otherwise this "
                   "pair measures the data change, not the model.")
