"""One small registry of named parts, for every kind of part normreg can be extended with.

Statistical tests (`judge/designs/`), executors (`execution/executors/`), audit checks (`auditing/checks/`) and output
formats (`render/formats/`) are each one file in their package that registers its part by name:

    from normreg.execution.executor import register

    @register("slurm")
    class SlurmExecutor: ...

The registry finds the files itself (it imports every module of its package the first time a name is looked up
or listed), so adding a part is adding a file; the suite schema, the command-line options and help, and the
errors for an unknown name all take their choices from `names()`. A misspelt name is an `InputError` in the
style of lm-evaluation-harness's: "unknown executor 'locl'. Did you mean 'local'? Available: local, ray".

Parts are listed by name, alphabetically, unless the registry is given an explicit `order`: those names first,
as listed, then any other part by name. (Not in registration order: which file is imported first depends on
what the caller imported before.)
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from normreg.errors import InputError, did_you_mean

T = TypeVar("T")
P = TypeVar("P")


class Registry(Generic[T]):
    """Parts of one kind, each under a unique name.

    `kind` names the kind in messages ("design", "executor"). `package`: the dotted name of the package whose
    modules register the parts, imported on first use. `check(name, part)` refuses a part that is not of the
    kind (raise `TypeError`), as a base-class check would. `order`: names listed first, in this order.
    """

    def __init__(self, kind: str, *, package: str | None = None, check: Callable[[str, T], None] | None = None,
                 order: Sequence[str] = ()) -> None:
        self.kind = kind
        self.package = package
        self.order = tuple(order)
        self._check = check
        self._parts: dict[str, T] = {}
        self._found = package is None
        self._busy = False

    def register(self, name: str) -> Callable[[P], P]:
        """Decorator: register the decorated class or function as the part `name`; returns it unchanged."""

        def add(part: P) -> P:
            self.add(name, part)  # type: ignore[arg-type]
            return part

        return add

    def add(self, name: str, part: T) -> None:
        """Register `part` as `name`. A class gets `name` as its `name` attribute (the registration is where the
        name is written; a subclass does not inherit its base's); one that declares a `name` of its own must
        declare this one. A second part under a name already taken is a `ValueError` (registering the same part
        again is allowed: a reload)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"expected a {self.kind}'s name to be a non-empty string, got {name!r}")
        declared = vars(part).get("name", name) if isinstance(part, type) else getattr(part, "name", name)
        if isinstance(declared, str) and declared != name:
            raise ValueError(f"{part!r} declares the name {declared!r} but is registered as the {self.kind} {name!r}")
        if self._check is not None:
            self._check(name, part)
        held = self._parts.get(name)
        if held is not None and held is not part and _qualname(held) != _qualname(part):
            raise ValueError(f"two {self.kind}s are registered as {name!r}: {_qualname(held)} and {_qualname(part)}")
        if isinstance(part, type):
            part.name = name  # type: ignore[attr-defined]
        self._parts[name] = part

    def _discover(self) -> None:
        if self._found or self._busy:  # busy: a module being imported looked a name up
            return
        self._busy = True
        try:
            package = importlib.import_module(self.package)  # type: ignore[arg-type]
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                importlib.import_module(f"{package.__name__}.{info.name}")
            self._found = True  # not before: a module that failed to import is tried again, and fails again
        finally:
            self._busy = False

    def names(self) -> tuple[str, ...]:
        """Every registered name: those of `order` first, as listed, then the others alphabetically."""
        self._discover()
        first = [n for n in self.order if n in self._parts]
        return (*first, *sorted(n for n in self._parts if n not in first))

    def get(self, name: str) -> T:
        """The part registered as `name`, or an `InputError` with a did-you-mean and the names available."""
        self._discover()
        try:
            return self._parts[name]
        except (KeyError, TypeError):
            names = self.names()
            raise InputError(f"unknown {self.kind} {name!r}.{did_you_mean(name, names)} "
                             f"Available: {', '.join(names) or 'none'}") from None

    def parts(self) -> tuple[T, ...]:
        """Every registered part, in the order of `names()`."""
        return tuple(self._parts[n] for n in self.names())

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._parts

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._parts)})"


def _qualname(part: object) -> str:
    return f"{getattr(part, '__module__', '?')}.{getattr(part, '__qualname__', type(part).__qualname__)}"
