"""`normreg audit`: find the BatchNorm trap in seconds, without training, and name the guilty layer.

The registered checks run on a suite's own models and data (README, "normreg audit"): pair divergence, batch
independence, train mode where nothing trains, frozen drift, per-source statistics, heterogeneous normalisation.

    findings.py    Finding / AuditReport and their JSON (schema normreg.audit/1); no torch (render/audit.py
                   draws them)
    record.py      global forward hooks recording every module call
    steps.py       driving a LightningModule without a Trainer: batches, steps, optimizers, state
    divergence.py  joining calls, matching rows, the first module whose outputs differ
    pair.py        a training step of a pair summarised: loss, gradient and statistics differences
    checks/        the checks, one file each, registered in checks/__init__.py (one signature: Recordings in,
                   findings out)
    run.py         audit_suite / audit_models: build as the runner does, record once, run every registered check
"""

from typing import Any

from normreg.auditing.findings import SCHEMA, AuditReport, Finding, ModeSummary, PairSummary

# run.py loads suite files and builds models: imported when one of its names is first asked for, so that reading
# or drawing findings (render/audit.py imports findings.py, which runs this file) loads neither.
_RUN_NAMES = ("Subject", "audit_loaded", "audit_models", "audit_suite", "likely_causes")

__all__ = ["SCHEMA", "AuditReport", "Finding", "ModeSummary", "PairSummary", *_RUN_NAMES]


def __getattr__(name: str) -> Any:
    if name in _RUN_NAMES:
        from normreg.auditing import run

        return getattr(run, name)
    raise AttributeError(f"module 'normreg.auditing' has no attribute '{name}'")
