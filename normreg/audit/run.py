"""Auditing a suite: build its variants as the runner does, drive each through the six checks, collect findings.

No training: one batch, a handful of steps, all on CPU. Phases restore each model's weights, buffers and modes
afterwards, so every check starts from the same freshly built (seeded) model.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normreg.audit.findings import AuditReport, Finding, PairSummary, sort_findings
from normreg.errors import InputError, did_you_mean
from normreg.suite.spec import Suite, load_suite


@dataclass(frozen=True)
class Subject:
    """One variant to audit: its name, its built LightningModule and its datamodule (None: the model's own data)."""

    name: str
    model: Any
    data: Any | None = None


DATA_PATH = "train_dataloader"  # fetching a training batch: where a model that collects its own data acts


def audit_models(subjects: Sequence[Subject], *, seed: int = 0,
                 drift_steps: int = 3) -> tuple[list[Finding], list[PairSummary], list[str]]:
    """Run the six checks on built models; the first subject is the reference of the pair checks.

    Returns (findings, pair summaries, notes about what could not be examined).
    """
    import torch

    from normreg.audit import checks
    from normreg.audit.pair import StepRecord, mode_summary, pair_findings
    from normreg.audit.record import Recorder, module_names
    from normreg.audit.steps import (
        copy_matching_state,
        eval_batches,
        optimizers_of,
        restore,
        run_eval_step,
        seed_all,
        snapshot,
        train_batch,
        training_step,
    )
    from normreg.run.worker import describe_error

    ref = subjects[0]
    findings: list[Finding] = []
    pairs: list[PairSummary] = []
    notes: list[str] = []
    names = {s.name: module_names(s.model) for s in subjects}
    copied = {s.name: copy_matching_state(ref.model, s.model) for s in subjects[1:]}
    snaps = {s.name: snapshot(s.model) for s in subjects}

    def state(model: Any) -> dict[str, Any]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def optimizers(s: Subject) -> list[torch.optim.Optimizer]:
        try:
            return optimizers_of(s.model)
        except Exception as e:  # noqa: BLE001 - e.g. configure_optimizers asks the Trainer for the step count
            notes.append(f"{s.name}: configure_optimizers raised {describe_error(e)}; steps run without optimizers")
            return []

    # The first training batch of each subject. Fetching it may act (a model collecting its own rollouts), so
    # it is recorded for check 3.
    batches: dict[str, Any] = {}
    data_calls: dict[str, list[Any]] = {}
    for s in subjects:
        seed_all(seed)
        s.model.train()
        with Recorder(names[s.name]) as rec:
            try:
                batches[s.name] = train_batch(s.model, s.data)
            except Exception as e:  # noqa: BLE001
                notes.append(f"{s.name}: getting a training batch raised {describe_error(e)}")
        data_calls[s.name] = rec.calls
        restore(s.model, snaps[s.name])

    # One training step per subject and mode, on the reference's batch (the subject's own if that one does not fit).
    def step(s: Subject, batch: Any, mode: str) -> StepRecord:
        snap = snaps[s.name]
        restore(s.model, snap)
        s.model.train(mode == "train")
        opts = optimizers(s)
        seed_all(seed)
        rec = Recorder(names[s.name], capture=True)
        # Outputs are compared up to the first optimizer step (manual optimisation): after it the weights differ
        # because the gradients did, which is a consequence, not a cause.
        def mark(*_: Any) -> None:
            rec.mark()

        hooks = [o.register_step_pre_hook(mark) for o in opts]
        try:
            with rec:
                result = training_step(s.model, batch, 0, optimizers=opts)
            return StepRecord(rec.before_first_mark(), result.loss, result.grads, snap.state, state(s.model))
        except Exception as e:  # noqa: BLE001
            return StepRecord([], None, {}, snap.state, {}, error=f"training_step raised {describe_error(e)}")
        finally:
            for h in hooks:
                h.remove()
            restore(s.model, snap)

    steps: dict[tuple[str, str], StepRecord] = {}
    if ref.name in batches:
        for s in subjects:
            for mode in ("train", "eval"):
                rec = step(s, batches[ref.name], mode)
                own = batches.get(s.name)
                if rec.error and own is not None and s is not ref:
                    retry = step(s, own, mode)
                    if not retry.error:
                        notes.append(f"{s.name}: the reference's batch does not fit its training_step "
                                     f"({rec.error}); compared on its own first batch")
                        rec = retry
                steps[(s.name, mode)] = rec

    # 1. Pair divergence.
    for s in subjects[1:]:
        if (s.name, "train") not in steps:
            continue
        summaries = tuple(mode_summary(mode, steps[(ref.name, mode)], steps[(s.name, mode)], (ref.name, s.name))
                          for mode in ("train", "eval"))
        findings += pair_findings(s.name, summaries, (ref.name, s.name))
        pairs.append(PairSummary(ref.name, s.name, summaries, *copied[s.name]))

    for s in subjects:
        train_rec = steps.get((s.name, "train"))
        if train_rec is not None and train_rec.error:
            notes.append(f"{s.name}: {train_rec.error}")
        elif train_rec is not None:
            # 5. Per-source statistics and 6. heterogeneous normalisation, from the train-mode step.
            findings += checks.per_source_statistics(train_rec.calls, s.name, train_rec.before)
            findings += checks.heterogeneous_normalisation(train_rec.calls, s.name)

        # 3. Train mode where nothing trains: evaluation, prediction and acting paths.
        paths: dict[str, list[Any]] = {DATA_PATH: data_calls[s.name]}
        try:
            evals = eval_batches(s.model, s.data)
        except Exception as e:  # noqa: BLE001
            evals = []
            notes.append(f"{s.name}: getting an evaluation batch raised {describe_error(e)}")
        for step_name, batch in evals:
            seed_all(seed)
            with Recorder(names[s.name]) as rec:
                try:
                    run_eval_step(s.model, step_name, batch)
                except Exception as e:  # noqa: BLE001
                    notes.append(f"{s.name}: {step_name} raised {describe_error(e)}")
            paths[step_name] = rec.calls
            restore(s.model, snaps[s.name])
        findings += checks.train_mode_without_training(paths, s.name)

        # 2. Batch independence: the inference paths' outermost calls in their own modes, and train mode.
        probed: set[tuple[int, frozenset[tuple[int, bool]]]] = set()
        roots = [(p, c, True) for p, calls in paths.items() for c in calls if c.args is not None]
        if train_rec is not None:
            roots += [("training_step", c, False) for c in train_rec.calls if c.args is not None]
        found: set[tuple[str, str]] = set()
        for path, call, inference in roots:
            key = (id(call.module), frozenset((call.flags or {}).items()))
            if key in probed or len(probed) >= 8:
                continue
            probed.add(key)
            for f in checks.batch_independence(call.module, call.args, call.flags or {}, variant=s.name, path=path,
                                               names=names[s.name], inference=inference):
                if (f.module, f.severity) not in found:
                    found.add((f.module, f.severity))
                    findings.append(f)
            restore(s.model, snaps[s.name])

        # 4. Frozen drift: a few steps with the model's own optimizer.
        batch = batches.get(s.name, batches.get(ref.name))
        if batch is not None:
            s.model.train()
            opts = optimizers(s)
            seed_all(seed)
            def one_step(i: int, model: Any = s.model, batch: Any = batch, opts: Any = opts) -> None:
                training_step(model, batch, i, optimizers=opts, update=True)

            try:
                findings += checks.frozen_drift(s.model, one_step, opts, s.name, drift_steps)
            except Exception as e:  # noqa: BLE001
                notes.append(f"{s.name}: frozen-drift steps raised {describe_error(e)}")
            restore(s.model, snaps[s.name])
    return findings, pairs, notes


def _choose(suite: Suite, variants: Sequence[str]) -> list[str]:
    names = [v.name for v in suite.variants]
    for v in variants:
        if v not in names:
            hint = did_you_mean(v, names)
            raise InputError(f"{suite.path}: unknown variant '{v}'.{hint} Variants: {', '.join(names)}")
    wanted = [n for n in names if n in variants] if variants else names
    return [suite.reference] + [n for n in wanted if n != suite.reference]


def audit_loaded(suite: Suite, variants: Sequence[str] = (), seed: int | None = None) -> AuditReport:
    """Audit a loaded suite: the reference and `variants` (default: all), built with `seed` as the runner does."""
    start = time.perf_counter()
    chosen = _choose(suite, variants)
    seed = suite.seeds[0] if seed is None else seed
    import torch

    from normreg.audit.steps import quiet, seed_all
    from normreg.suite.targets import build, importable

    importable([suite.directory])
    threads = torch.get_num_threads()
    # One batch of a small model: a single thread is fastest, and on a shared machine far faster than several.
    torch.set_num_threads(1)
    try:
        with quiet():
            subjects = []
            for name in chosen:
                v = suite.variant(name)
                seed_all(seed)
                dm = build(suite, v.data, "data") if v.data is not None else None
                subjects.append(Subject(name, build(suite, v.model, "model"), dm))
            findings, pairs, notes = audit_models(subjects, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return AuditReport(suite=suite.name, path=str(suite.path), digest=suite.digest, reference=suite.reference,
                       variants=tuple(chosen), seed=seed,
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       duration_s=time.perf_counter() - start, findings=sort_findings(findings), pairs=tuple(pairs),
                       notes=tuple(notes))


def audit_suite(path: str | Path, variants: Sequence[str] = (), seed: int | None = None,
                overrides: Sequence[str] = ()) -> AuditReport:
    """`normreg audit SUITE`: load the suite file and audit it."""
    return audit_loaded(load_suite(path, overrides), variants, seed)


def likely_causes(suite: Suite, variants: Sequence[str]) -> AuditReport:
    """For `normreg run`: the audit of the reference and the variants of failing pairs. Never raises: an audit
    that cannot run is an `AuditReport` holding the error."""
    try:
        return audit_loaded(suite, variants)
    except Exception as e:  # noqa: BLE001 - an audit failure must never break a run
        from normreg.run.worker import describe_error

        return AuditReport(suite=suite.name, error=describe_error(e))
