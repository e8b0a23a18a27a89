"""Suite files in, validated `Suite`s out: the entry the commands use (`load_suite`, `load_suites`).

`suite.loading` reads the YAML, `suite.building` checks it and makes the frozen `suite.model.Suite`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from normreg.errors import InputError, SuiteError
from normreg.suite.building import build_suite
from normreg.suite.loading import read_document
from normreg.suite.model import MAX_SEEDS, SeedPlan, Seeds, Suite


def load_suite(path: str | Path, overrides: Sequence[str] = ()) -> Suite:
    """Read and validate one suite file; `overrides` are `KEY.PATH=VALUE` strings applied first."""
    return build_suite(read_document(Path(path)), overrides)


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders into the suite files they hold (`*.yaml`, `*.yml`, sorted); keep files as given."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
            if not files:
                raise SuiteError("this folder holds no .yaml suite files", path=str(p))
            found.extend(files)
        else:
            found.append(p)
    return found


def load_suites(paths: Sequence[str | Path], overrides: Sequence[str] = (), seeds: Seeds = None) -> list[Suite]:
    """Load every suite named or found in the folders named; `seeds` replaces each suite's seeds with 0..N-1,
    or with "auto" stages them (the suite's own `seeds: {min, max}`, else min 3, max 20)."""
    if seeds not in (None, "auto") and not (isinstance(seeds, int) and 1 <= seeds <= MAX_SEEDS):
        raise InputError(f"expected a seed count from 1 to {MAX_SEEDS} or 'auto', got {seeds!r}")
    suites = [load_suite(p, overrides) for p in discover(paths)]
    if seeds == "auto":
        suites = [s if s.seed_plan else replace(s, seed_plan=SeedPlan(), seeds=tuple(range(SeedPlan().max)))
                  for s in suites]
    elif seeds is not None:
        suites = [replace(s, seeds=tuple(range(int(seeds))), seed_plan=None) for s in suites]
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"two suites share the name {', '.join(dupes)}; give each a distinct 'name'")
    return suites
