"""The environment fingerprint that travels with reports and baselines, and how two of them differ."""

from __future__ import annotations

import datetime as _dt
import platform
import re
import subprocess
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from normreg.version import __version__

# Keys whose difference can change results; dates, hosts and commits differ every night and are not reported.
COMPARED_KEYS = ("normreg", "python", "torch", "pytorch_lightning", "device", "platform", "torch_threads")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_commit(where: Path) -> str | None:
    """The commit checked out around `where`, with `+dirty` when the tree has changes, or None."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(device: str | None = None, where: Path | None = None) -> dict[str, Any]:
    """Versions, device, commit and date; `device` is filled in from the runs once they have finished."""
    return {
        "normreg": __version__,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "pytorch_lightning": _version("pytorch-lightning"),
        "platform": f"{platform.system()}-{platform.machine()}",
        "device": device,
        "git_commit": git_commit(where or Path.cwd()),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Keys that can change results and differ: {key: [stored, current]}."""
    return {k: [stored.get(k), current.get(k)] for k in COMPARED_KEYS
            if k in stored and k in current and stored.get(k) != current.get(k)}


def device_class(device: str | None) -> str:
    """The class of a device as it names a baseline file: `cpu`, or the GPU model without the count,
    e.g. `cuda:NVIDIA H200 x8` -> `cuda-NVIDIA-H200`. Only letters, digits, `.`, `_` and `-` remain."""
    if not device:
        return "unknown"
    text = re.sub(r"\s+x\d+$", "", device.strip())
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unknown"


# The keys a baseline can be kept per: name -> the file-name part it takes from the run's environment.
BASELINE_KEYS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "device": lambda environment: device_class(environment.get("device")),
}
