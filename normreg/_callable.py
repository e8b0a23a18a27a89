"""`normreg.run`, `normreg.compare` and `normreg.audit` are both modules of the package and the public API.

Python binds a package's attribute to a submodule whenever the submodule is imported, so a plain function named
`run` in `normreg/__init__.py` would be replaced by the `normreg.run` package the moment anything imported it.
Instead, each of those three modules is made callable: calling it calls `normreg.api`'s function of that name.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str, function: str) -> None:
    """Let the module `module_name` be called as `normreg.api.<function>`."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            from normreg import api

            return getattr(api, function)(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
