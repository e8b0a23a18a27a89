"""JSON files the way normreg writes and reads them: sorted keys, trailing newline, atomic rename, checked schema."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import normreg
from normreg.errors import ResultsError


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
