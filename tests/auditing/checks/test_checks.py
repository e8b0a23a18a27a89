"""normreg/auditing/checks/__init__.py: every check registered once, in order; a new check is one registered
function."""

from __future__ import annotations

from normreg.auditing import audit_suite
from tests.auditing.helpers import SUITES, audited


def test_every_check_is_registered_once_in_order_and_reports_list_them() -> None:
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
