"""normreg: regression tests for machine-learning implementations that should be equivalent.

The Python API, for scripts and notebooks (each returns the report object the matching command renders):

    import normreg
    report = normreg.run("suites/domain_adapt.yaml")      # normreg.report.model.Report; .exit_code, .checks
    report = normreg.compare("baselines/x.json", "runs/20261128-031700/report.json")
    findings = normreg.audit("suites/domain_adapt.yaml")  # normreg.auditing.findings.AuditReport

They are imported on first use, so `import normreg` stays light (no torch, no Lightning, no scipy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "audit", "compare", "run"]

if TYPE_CHECKING:
    from normreg.api import audit, compare, run  # noqa: F401 - the signatures type checkers see


def __getattr__(name: str) -> Any:
    # `normreg.run`, `.compare` and `.audit` are also the package's modules: importing one binds it here, so the
    # modules themselves are callable (see normreg/_callable.py) and are what this returns.
    if name in ("run", "compare", "audit"):
        import importlib

        return importlib.import_module(f"normreg.{name}")
    raise AttributeError(f"module 'normreg' has no attribute '{name}'")
