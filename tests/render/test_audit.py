"""normreg/render/audit.py: the audit's terminal view."""

from __future__ import annotations

from normreg.render.audit import render_audit
from tests.auditing.helpers import audited


def test_render_names_the_guilty_layer() -> None:
    text = render_audit(audited("audit_pair"))
    assert "merged -> twin" in text and "net.1 (BatchNorm1d); cause: batch composition" in text
    assert text.rstrip().endswith("Outcome: ERROR (exit 1)")
