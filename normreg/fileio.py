"""JSON files the way normreg writes and reads them: sorted keys, trailing newline, atomic rename, checked schema."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import normreg
from normreg.errors import InputError, ResultsError


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: readers never see half a file."""
    write_text_atomic(path, json.dumps(data, sort_keys=True, indent=2, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 `text` to a temporary file beside `path`, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; a report is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def read_json(path: Path) -> Any:
    """Parse a JSON file, or raise `ResultsError` naming the file (and the line, for bad JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ResultsError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None


def check_schema(path: Path, data: Any, expected: str) -> None:
    """Refuse files of another kind or of a schema version this normreg does not know."""
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object with a 'schema' field, found {type(data).__name__}")
    schema = data.get("schema")
    kind = expected.split("/")[0]
    if not isinstance(schema, str) or not schema.startswith(kind + "/"):
        raise ResultsError(f"{path}: expected a file with schema '{expected}', found {schema!r}")
    if schema != expected:
        raise ResultsError(f"{path}: schema '{schema}' is not known to normreg {normreg.__version__}, which reads "
                           f"'{expected}'; upgrade normreg or regenerate the file with this version")


def clean_json(value: Any) -> Any:
    """JSON has no NaN or infinity: store them as null; keys become strings, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    return value


# ------------------------------------------------------------------------------ output paths, checked up front


def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else why not (tried for real: permissions lie to root)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".normreg-probe-", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output_file(path: Path, option: str) -> None:
    """Refuse, before any work is done, an output file that is a folder or could not be written."""
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name, e.g. {path / ('report' + _suffix(option))}")
    found = _nearest_existing(path.parent)
    if not found.is_dir():
        raise InputError(f"{option} {path}: {found} is a file, so the file cannot be created under it")
    why = _probe_writable(found)
    if why is None and path.exists() and not os.access(path, os.W_OK):
        why = "the file is read-only"
    if why:
        raise InputError(f"{option} {path}: cannot write there ({why}); give another path")


def check_output_dir(path: Path, option: str, *, write: bool = True) -> None:
    """Refuse, before any work is done, a folder option that names a file or (when `write`) cannot be written."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path}: is a file, not a folder; give a folder")
    found = _nearest_existing(path)
    if not found.is_dir():
        raise InputError(f"{option} {path}: {found} is a file, so the folder cannot be created under it")
    why = _probe_writable(found) if write else None
    if why:
        raise InputError(f"{option} {path}: cannot write there ({why}); give another folder")


def _suffix(option: str) -> str:
    return {"--html": ".html", "--markdown": ".md", "--junit": ".xml"}.get(option, ".json")
