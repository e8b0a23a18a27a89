"""normreg/auditing/findings.py: the audit report's JSON, versioned, sorted and complete."""

from __future__ import annotations

import json
from pathlib import Path

from normreg.auditing import SCHEMA
from tests.auditing.helpers import audited


def test_json_report_is_versioned_sorted_and_complete(tmp_path: Path) -> None:
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
