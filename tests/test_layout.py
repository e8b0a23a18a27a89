"""The package layout: each stage imports only from the stages before it, and nothing imports in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "normreg"
# What each part may import from normreg, besides itself and the shared modules.
SHARED = {"errors", "fileio", "environment", "choices", "_callable", "names", "registry"}
ALLOWED = {
    "suite": set(),
    "run": {"suite"},
    "judge": {"suite", "run"},
    "audit": {"suite", "run"},
    "report": {"suite", "run", "judge", "audit"},
    "render": {"suite", "run", "judge", "audit", "report"},
}


def imports(path: Path) -> set[str]:
    """The normreg parts a module imports, inside functions and under TYPE_CHECKING included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        out |= {n.split(".")[1] for n in names if n.startswith("normreg.")}
    return out


def test_each_stage_imports_only_earlier_stages():
    bad = []
    for part, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / part).rglob("*.py")):
            wrong = imports(path) - allowed - SHARED - {part}
            if wrong:
                bad.append(f"{path.relative_to(PACKAGE)} imports normreg.{', normreg.'.join(sorted(wrong))}")
    assert bad == []


def test_shared_modules_import_no_stage():
    for name in SHARED:
        assert imports(PACKAGE / f"{name}.py") <= SHARED, name
