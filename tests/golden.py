"""Compare text with a golden file; NORMREG_UPDATE_GOLDEN=1 rewrites the file instead (then review the diff)."""

from __future__ import annotations

import os
from pathlib import Path


def assert_golden(text: str, path: Path) -> None:
    if os.environ.get("NORMREG_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path.name} differs from the golden file; if the change is intended, rerun with " \
                             "NORMREG_UPDATE_GOLDEN=1 and review the diff"
