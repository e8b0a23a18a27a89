"""Resolving `package.module:callable` targets into models and data modules, with errors that point at the suite.

Imports torch and Lightning lazily: only commands that build models pay for them.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from normreg.errors import SuiteError, did_you_mean
from normreg.suite.model import Suite, Target


def importable(directories: Iterable[Path]) -> None:
    """Put the suite folders and the working directory first on sys.path, so a user's module next to a suite
    imports, and a module of the same name next to another suite met earlier in this process does not win."""
    for d in [Path.cwd(), *directories]:
        text = str(d.resolve())
        if text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)


def _forget_shadowed(directory: Path, module: str) -> None:
    """Where the suite's folder holds its own `module` (a file or a package) but a module of that name was imported
    earlier in this process from elsewhere (next to another suite), forget that one and its submodules, so the
    import finds the suite's: sys.path's order alone does not help a module already in sys.modules."""
    top = module.partition(".")[0]
    own = next((p for p in (directory / f"{top}.py", directory / top / "__init__.py") if p.is_file()), None)
    loaded = sys.modules.get(top)
    if own is None or loaded is None:
        return
    found = getattr(loaded, "__file__", None)
    if found and Path(found).resolve() == own.resolve():
        return
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        del sys.modules[name]


def _error(suite: Suite, target: Target, message: str, key_suffix: str = ".target") -> SuiteError:
    line = target.line
    return SuiteError(message, path=str(suite.path), line=line, key=target.key + key_suffix)


def resolve(suite: Suite, target: Target) -> Callable[..., Any]:
    """Import the module of `target` and return its callable; errors name the suite line."""
    importable([suite.directory])
    _forget_shadowed(suite.directory, target.module)
    try:
        module = importlib.import_module(target.module)
    except ModuleNotFoundError as e:
        missing = e.name or target.module
        if missing == target.module or target.module.startswith(missing + "."):
            raise _error(suite, target, f"cannot import module '{target.module}' ({e}). normreg looks in the "
                                        f"suite's folder ({suite.directory}), the working directory and the "
                                        "installed packages: check the spelling or install the package") from None
        raise _error(suite, target, f"importing '{target.module}' failed: {e}; install what it needs") from None
    except (Exception, SystemExit) as e:  # the user's module raised (or called sys.exit) while being imported
        raise _error(suite, target, f"importing '{target.module}' raised {type(e).__name__}: {e}") from None
    obj: Any = module
    for part in target.attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            hint = did_you_mean(part, names, prefix=f"{target.module}:")
            raise _error(suite, target, f"module '{target.module}' has no attribute '{target.attr}'.{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise _error(suite, target, f"'{target.spec}' is {type(obj).__name__}, not a class or function")
    return obj


def lightning_kinds() -> dict[str, tuple[type, ...]]:
    """LightningModule / LightningDataModule base classes of every Lightning flavour that is installed."""
    kinds: dict[str, list[type]] = {"model": [], "data": []}
    for name in ("pytorch_lightning", "lightning.pytorch"):
        try:
            pl = importlib.import_module(name)
        except ImportError:
            continue
        kinds["model"].append(pl.LightningModule)
        kinds["data"].append(pl.LightningDataModule)
    return {k: tuple(v) for k, v in kinds.items()}


def build(suite: Suite, target: Target, kind: str) -> Any:
    """Call the target with its args and check it returned a LightningModule (model) or LightningDataModule (data)."""
    factory = resolve(suite, target)
    try:
        obj = factory(**target.args)
    except TypeError as e:
        unknown = _unknown_args(factory, target.args)
        if unknown:
            name, params = unknown
            hint = did_you_mean(name, params)
            raise _error(suite, target, f"'{target.spec}' takes no argument '{name}'.{hint} "
                                        f"It takes: {', '.join(params) or 'none'}", f".args.{name}") from None
        raise _error(suite, target, f"calling '{target.spec}' with args {dict(target.args)} raised TypeError: {e}",
                     ".args") from None
    except (Exception, SystemExit) as e:
        raise _error(suite, target, f"calling '{target.spec}' raised {type(e).__name__}: {e}", "") from None
    expected = lightning_kinds()[kind]
    if not isinstance(obj, expected):
        want = "a LightningModule" if kind == "model" else "a LightningDataModule"
        raise _error(suite, target, f"'{target.spec}' returned {type(obj).__module__}.{type(obj).__qualname__}, "
                                    f"but a '{kind}' target must return {want}")
    return obj


def _unknown_args(factory: Callable[..., Any], args: dict[str, Any] | Any) -> tuple[str, list[str]] | None:
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    params = [p.name for p in sig.parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    for name in args:
        if name not in params:
            return name, params
    return None
