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

from normreg.version import __version__

__all__ = ["__version__", "audit", "compare", "run"]

if TYPE_CHECKING:
    from normreg.api import audit, compare, run  # noqa: F401 - the signatures type checkers see


_API = ("run", "compare", "audit")


def __getattr__(name: str) -> Any:
    # The API functions are looked up on first use (PEP 562), so `import normreg` imports only normreg.version. No
    # module of the package is named like them (the stages are normreg.execution, .comparison, .auditing), so an
    # import never rebinds these names.
    if name in _API:
        from normreg import api

        function = getattr(api, name)
        globals()[name] = function
        return function
    raise AttributeError(f"module 'normreg' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
