"""Where two versions of a suite differ: the key paths whose values changed, for the messages that say a suite
changed since an interrupted run (`--resume`) or since its stored baseline."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SHOWN = 5  # changes named in a message; the rest are counted


def content_changes(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Each key path whose value differs, as `path: old -> new` (`(none)` where a key is absent)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{path}: (none) -> {json.dumps(new[key], sort_keys=True)}")
            elif key not in new:
                out.append(f"{path}: {json.dumps(old[key], sort_keys=True)} -> (none)")
            else:
                out += content_changes(old[key], new[key], path)
        return out
    if old != new:
        return [f"{prefix}: {json.dumps(old, sort_keys=True)} -> {json.dumps(new, sort_keys=True)}"]
    return []


def summarise(changes: list[str] | tuple[str, ...]) -> str:
    """The first few changes joined by `; `, and how many more there are."""
    more = len(changes) - SHOWN
    return "; ".join(changes[:SHOWN]) + (f"; and {more} more" if more > 0 else "")
