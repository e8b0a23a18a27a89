"""JSON files the way normreg writes and reads them: sorted keys, trailing newline, atomic rename, checked schema."""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from normreg.errors import InputError, ResultsError, file_problem, printable
from normreg.version import __version__


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


def check_schema(path: Path, data: Any, expected: str) -> None:
    """Refuse files of another kind or of a schema version this normreg does not know."""
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected a JSON object with a 'schema' field, found {type(data).__name__}")
    schema = data.get("schema")
    kind = expected.split("/")[0]
    if not isinstance(schema, str) or not schema.startswith(kind + "/"):
        raise ResultsError(f"{path}: expected a file with schema '{expected}', found {schema!r}")
    if schema != expected:
        raise ResultsError(f"{path}: schema '{schema}' is not known to normreg {__version__}, which reads "
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


# ------------------------------------------------------------------------------ reading: bounded, with limits

# What normreg reads is bounded by what is actually read, not by the size a file reports: /dev/zero, a pipe and
# /proc files all say they are empty. A report of 1000 seeds with per-epoch curves is a few MiB.
MAX_DATA_BYTES = 128 * 1024 * 1024  # reports, baselines, run.json, runs.jsonl, CSVs
MAX_JSON_DEPTH = 64  # a report nests about 8 deep; Python's own parser dies of recursion near 1000
MAX_INT_DIGITS = 100  # JSON and YAML integers: far above any seed or count, far below Python's 4300-digit limit


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a file is, in words, from its `st_mode`: `a regular file`, `a folder`, `a named pipe (FIFO)`, ..."""
    return next((what for test, what in _KINDS if test(mode)), "a regular file" if stat.S_ISREG(mode) else
                "not a regular file")


def _open_regular(path: Path, what: str) -> int:
    """A read-only descriptor of regular file `path`, or `ResultsError` (a missing file, a folder, a FIFO...)."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise file_problem(path, "no such file", missing=True) from None
    except OSError as e:
        raise file_problem(path, f"cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError as e:
        os.close(fd)
        raise file_problem(path, f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise file_problem(path, f"is {file_kind(mode)}, not a regular file; give {what}")
    return fd


def count_lines(path: Path, at_most: int, what: str = "a file") -> int:
    """How many non-blank lines regular file `path` has, counting no further than `at_most`: it reads only as far
    as those lines go (a results table is not read whole to learn whether it has a row). `ResultsError` as
    `read_text_bounded` for a missing file or one that is not a regular file."""
    fd = _open_regular(path, what)
    try:
        found, partial = 0, False  # partial: the line read so far, not yet ended, is not blank
        while found < at_most:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                found += partial
                break
            *ended, last = chunk.split(b"\n")
            for i, piece in enumerate(ended):
                found += bool(piece.strip()) or (i == 0 and partial)
            partial = bool(last.strip()) or (partial and not ended)
    except OSError as e:
        raise file_problem(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    return min(found, at_most)


def read_text_bounded(path: Path, limit: int = MAX_DATA_BYTES, what: str = "a file") -> str:
    """The UTF-8 text of regular file `path`, reading at most `limit` bytes; raises `ResultsError` for a missing
    file, anything that is not a regular file (a folder, a FIFO, a device: never opened for a blocking read), a
    file over `limit` (however large it says it is) or text that is not UTF-8. `what`: the file expected, for the
    message ("a suite file")."""
    fd = _open_regular(path, what)
    try:
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise file_problem(path, f"over the {limit}-byte limit for {what}; is it the right file?")
    except OSError as e:
        raise file_problem(path, f"cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise file_problem(path, f"not UTF-8 text (byte {e.start}: {e.reason}); give {what}", line=line) from None


class _IntTooLong(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _IntTooLong(f"an integer of {len(text.lstrip('-'))} digits, over the limit of {MAX_INT_DIGITS}")
    return int(text)


def parse_json(text: str, source: str | Path) -> Any:
    """JSON text parsed within normreg's limits (nesting depth, integer digits, valid Unicode strings), or a
    `ResultsError` naming `source`, the line or the key path, and the limit. NaN and Infinity parse (as Python
    does): the schema checks refuse them with the field's name."""
    try:
        data = json.loads(text, parse_int=_bounded_int)
    except _IntTooLong as e:
        raise file_problem(source, f"{e}; not a file normreg wrote") from None
    except RecursionError:
        raise file_problem(source, f"nested more than {MAX_JSON_DEPTH} levels deep (the limit for normreg's JSON "
                                  "files); not a file normreg wrote") from None
    except json.JSONDecodeError as e:
        raise file_problem(source, f"not valid JSON: {e.msg}", line=e.lineno) from None
    except ValueError as e:  # any other limit of the parser itself
        raise file_problem(source, f"not valid JSON: {e}") from None
    check_tree(data, source)
    return data


def check_tree(data: Any, source: str | Path) -> None:
    """Refuse parsed data nested more than `MAX_JSON_DEPTH` deep, or holding a string or key with a lone surrogate
    (JSON's and YAML's `\\ud800` escapes make one; no file, terminal or page can hold it), naming the key path."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            where = where if len(where) <= 80 else where[:60] + "..."
            raise file_problem(source, f"{where or 'the top level'}: nested more than {MAX_JSON_DEPTH} levels deep "
                                      "(the limit for normreg's JSON files)")
        if isinstance(value, str):
            if has_surrogate(value):
                raise file_problem(source, f"{where or 'the top level'}: a string holding a lone surrogate "
                                          f"({printable(value)[:60]}); write it as valid Unicode text")
        elif isinstance(value, dict):
            for k, v in value.items():
                key = f"{where}.{k}" if where else str(k)
                if isinstance(k, str) and has_surrogate(k):
                    raise file_problem(source, f"{printable(key)[:80]}: a key holding a lone surrogate; write "
                                              "it as valid Unicode text")
                stack.append((v, key, depth + 1))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))


def has_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (from a `\\ud800` escape in JSON or YAML)."""
    return any("\ud800" <= c <= "\udfff" for c in text) if not text.isascii() else False


def read_json(path: Path, limit: int = MAX_DATA_BYTES, what: str = "a normreg JSON file") -> Any:
    """Parse a JSON file within normreg's limits (`read_text_bounded`, `parse_json`), or raise `ResultsError`
    naming the file (and the line or key path)."""
    return parse_json(read_text_bounded(path, limit, what), path)


# ------------------------------------------------------------------------------ output paths, checked up front


def _nearest_existing(path: Path) -> Path:
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path) -> str | None:
    """None when data can be written in `folder`, else why not. Tried for real (permissions lie to root), with 64 KiB
    synced to disk: a full disk often still has room for an empty file, not for data."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".normreg-probe-", dir=folder)
    except OSError as e:
        return e.strerror or str(e)
    try:
        os.write(fd, b"\0" * 65536)
        os.fsync(fd)
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(fd)
        os.unlink(tmp)
    return None


def check_output_file(path: Path, option: str, *, inputs: Iterable[Path] = (),
                      reads: Mapping[Path, tuple[str, ...]] | None = None, suffix: str = ".json") -> None:
    """The guard every output file of every command goes through, before any work is done. Refuses a path that is
    a folder, a device, a FIFO or anything else that is not a regular file or a new name; one of the
    command's `inputs` (the same file, however it is named); a file inside an input folder that the command reads
    from that folder (`reads`: folder -> suffixes, e.g. the `.json` files `history` finds); a suite, a baseline or
    a run directory's own file, which no output may replace; and a place that cannot be written. `suffix`: the
    file name ending the option writes, for the example name an error gives."""
    try:
        st = os.stat(path)  # follows a symlink: the file it names is what would be read again
    except FileNotFoundError:
        st = None  # a new name (or a dangling symlink, which the atomic rename replaces)
    except OSError as e:
        raise InputError(f"{option} {path}: cannot use this path ({e.strerror or e}); give another file name") \
            from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError(f"{option} {path}: is a folder; give a file name, e.g. {path / ('report' + suffix)}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError(f"{option} {path}: is {file_kind(st.st_mode)}, not a regular file or a new name; give a "
                         "file name")
    for given in inputs:
        if _same_file(path, given):
            raise InputError(f"{option} {path}: is an input of this command ({given}); writing it would replace "
                             "what was read: give another file name")
    for folder, suffixes in (reads or {}).items():
        if path.suffix.lower() in suffixes and _inside(path, folder):
            raise InputError(f"{option} {path}: is inside {folder}, whose {'/'.join(suffixes)} files this command "
                             "reads; write outside that folder or under another suffix")
    if st is not None:
        kind = _protected(path)
        if kind:
            raise InputError(f"{option} {path}: is {kind}, which no output replaces; give another file name")
    found = _nearest_existing(path.parent)
    if not found.is_dir():
        raise InputError(f"{option} {path}: {found} is a file, so the file cannot be created under it")
    why = _probe_writable(found)
    if why is None and st is not None and not os.access(path, os.W_OK):
        why = "the file is read-only"
    if why:
        raise InputError(f"{option} {path}: cannot write there ({why}); give another path")


def check_outputs(outputs: Mapping[str, Path | None], *, inputs: Iterable[Path] = (),
                  reads: Mapping[Path, tuple[str, ...]] | None = None,
                  suffixes: Mapping[str, str] | None = None) -> None:
    """`check_output_file` for each output given (option -> path, None: not asked for), and no file named by two
    options. `suffixes`: the file name ending each option writes (option -> suffix, e.g. the output formats'
    `render.outputs.option_suffixes()`; .json for an option not in it)."""
    inputs = tuple(inputs)
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        check_output_file(path, option, inputs=inputs, reads=reads, suffix=(suffixes or {}).get(option, ".json"))
        key = os.path.realpath(path)
        if key in seen:
            raise InputError(f"{option} {path}: is also given to {seen[key]}; give each output its own file")
        seen[key] = option


def check_output_folder(path: Path, option: str, *, inputs: Iterable[Path] = ()) -> None:
    """The guard of an output folder (`run --out`): not empty, not one of the command's inputs (a suite folder, the
    baselines folder); the rest (a file, a folder that cannot be written) is `check_output_dir`'s."""
    if str(path) in ("", "."):
        raise InputError(f"{option}: the working directory; give a folder of its own, e.g. runs/nightly")
    for given in inputs:
        if _same_file(path, given):
            raise InputError(f"{option} {path}: is an input of this command ({given}); give a folder of its own")
    check_output_dir(path, option)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder)) and Path(folder).is_dir()
    except OSError:
        return False


def _protected(path: Path) -> str | None:
    """What an existing file is when no output may replace it: a suite, a baseline, a run directory's own file."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return "a YAML file (a suite)"
    real = Path(os.path.realpath(path))
    if real.name in RUN_FILES and any((d / LOCK_NAME).exists() for d in (real.parent, real.parent.parent)):
        return "a file of a run directory"
    if path.suffix.lower() == ".json":
        try:
            schema = read_json(path).get("schema")
        except (ResultsError, AttributeError):
            return None
        if isinstance(schema, str) and schema.startswith("normreg.baseline/"):
            return "a stored baseline (written only by --update-baseline)"
    return None


LOCK_NAME = ".normreg.lock"  # the lock every run directory holds (`run.rundir`)
RUN_FILES = ("report.json", "run.json", "results.csv", "runs.jsonl")  # what a run directory records


def check_output_dir(path: Path, what: str, *, write: bool = True) -> None:
    """Refuse, before anything trains, a folder (`what`: the option or its role) that names a file or (when
    `write`) could not be written: read-only, or a full disk. Creates nothing: the probe is written into the folder,
    or into its nearest existing parent when the folder is still to be made."""
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {path}: is a file, not a folder; give a folder")
    found = _nearest_existing(path)
    if not found.is_dir():
        raise InputError(f"{what} {path}: {found} is a file, so the folder cannot be created under it")
    why = _probe_writable(found) if write else None
    if why:
        raise InputError(f"{what} {path}: cannot write there ({why}); free some space, fix the permissions or give "
                         "another folder")


# Numbers normreg reads from files must be finite and small enough that squares and sums of them stay finite
# (a variance of values near 1e308 overflows).
MAX_ABS_VALUE = 1e100


def describe_value(value: Any, *, yaml: bool = False) -> str:
    """What was found, in words, for an error message: `a string ('0.01')`, `a list`; in JSON's words (`null`,
    `an object`) by default, in YAML's (`nothing (null)`, `a mapping`) for suite files."""
    if value is None:
        return "nothing (null)" if yaml else "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value[:40]!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping" if yaml else "an object"
    return type(value).__name__


def finite_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is finite and within ±`MAX_ABS_VALUE`."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) <= MAX_ABS_VALUE)


def _expected(hint: Any, value: Any = None) -> str:
    import types
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a, value) for a in args)
    if hint is type(None):
        return "null"
    if hint is float:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return f"a finite number within ±{MAX_ABS_VALUE:g}" if number else "a number"
    if hint is int:
        return "a whole number"
    if hint is str:
        return "a string"
    if hint is bool:
        return "true or false"
    if origin in (tuple, list) or hint in (tuple, list):
        return "a list"
    return "an object"


def _mismatch(value: Any, hint: Any, path: str) -> tuple[str, Any, Any] | None:
    """None when `value` fits `hint`; else (path, hint, value) of the innermost part that does not."""
    import collections.abc
    import types
    import typing

    if hint is Any:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if any(_mismatch(value, a, path) is None for a in args):
            return None
        containers = [a for a in args if a is not type(None)]
        if len(containers) == 1 and isinstance(value, (list, dict)):
            return _mismatch(value, containers[0], path)  # name the element inside, not the container
        return path, hint, value
    if hint is type(None):
        return None if value is None else (path, hint, value)
    if hint is float:
        return None if finite_number(value) else (path, hint, value)
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else (path, hint, value)
    if hint in (str, bool):
        return None if isinstance(value, hint) else (path, hint, value)
    if origin in (tuple, list, collections.abc.Sequence) or hint in (tuple, list):
        if not isinstance(value, list):
            return path, hint, value
        inner = args[0] if args else Any
        for i, v in enumerate(value):
            found = _mismatch(v, inner, f"{path}[{i}]")
            if found:
                return found
        return None
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        if not isinstance(value, dict):
            return path, hint, value
        inner = args[1] if len(args) == 2 else Any
        for k, v in value.items():
            found = _mismatch(v, inner, f"{path}.{k}")
            if found:
                return found
        return None
    return None


def check_fields(source: str, where: str, data: Any, cls: type, json_hints: Mapping[str, Any] | None = None,
                 required: bool = True) -> None:
    """Check a JSON object against the annotations of dataclass `cls`: every field present (unless it has a
    default or `required` is false) and of the annotated type, or of its type in `json_hints` for fields stored
    in another form (e.g. a tuple of dataclasses as an object). Raises `ResultsError` naming file and field."""
    import dataclasses
    import typing

    if not isinstance(data, dict):
        raise ResultsError(f"{source}: {where}: expected an object, found {describe_value(data)}")
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if required and not has_default:
                raise ResultsError(f"{source}: {where}.{f.name}: missing; regenerate the file with this normreg")
            continue
        hint = (json_hints or {}).get(f.name, hints[f.name])
        found = _mismatch(data[f.name], hint, f"{where}.{f.name}")
        if found:
            path, hint, value = found
            raise ResultsError(f"{source}: {path}: expected {_expected(hint, value)}, found {describe_value(value)}; "
                               "regenerate the file with this normreg")
