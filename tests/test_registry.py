"""normreg/registry.py: one registry shape for designs, executors, audit checks and output formats."""

from __future__ import annotations

import pytest

from normreg.errors import InputError
from normreg.registry import Registry


def test_parts_are_found_by_name_with_a_did_you_mean_listing_the_names() -> None:
    reg: Registry[object] = Registry("widget", order=("zeta",))

    @reg.register("alpha")
    class Alpha:
        name = "alpha"

    @reg.register("zeta")
    def zeta() -> None: ...

    reg.add("beta", 3)
    assert reg.get("alpha") is Alpha and reg.get("beta") == 3 and "zeta" in reg and "gamma" not in reg
    assert reg.names() == ("zeta", "alpha", "beta") and list(reg) == list(reg.names()) and len(reg) == 3
    with pytest.raises(InputError, match=r"^unknown widget 'alpah'\. Did you mean 'alpha'\? Available: zeta, alpha, "
                                         r"beta$"):
        reg.get("alpah")
    with pytest.raises(InputError, match=r"unknown widget 'x'\. Available: zeta, alpha, beta$"):
        reg.get("x")


def test_a_name_is_taken_once_and_matches_what_the_part_declares() -> None:
    reg: Registry[object] = Registry("widget", check=lambda name, part: None if callable(part) else
                                     (_ for _ in ()).throw(TypeError(f"{name}: not callable")))

    @reg.register("one")
    def one() -> None: ...

    def other() -> None: ...

    with pytest.raises(ValueError, match=r"two widgets are registered as 'one'"):
        reg.add("one", other)
    reg.add("one", one)  # the same part again (a module reloaded) is no conflict

    class Named:
        name = "two"

    with pytest.raises(ValueError, match=r"declares the name 'two' but is registered as the widget 'three'"):
        reg.add("three", Named)
    with pytest.raises(TypeError, match="four: not callable"):
        reg.add("four", 4)


def test_every_kind_of_part_is_in_one_registry_found_by_name() -> None:
    from normreg.auditing.checks import CHECKS, ORDER
    from normreg.execution.executor import EXECUTORS
    from normreg.judge.designs import DESIGNS
    from normreg.render.outputs import FORMATS

    for reg in (CHECKS, DESIGNS, FORMATS, EXECUTORS):
        assert isinstance(reg, Registry)
    assert CHECKS.names() == ORDER  # the documented order, in one place
    assert DESIGNS.names() == ("paired", "permutation", "welch")
    assert {"local", "ray"} <= set(EXECUTORS.names())
    assert FORMATS.names()[:3] == ("html", "markdown", "junit")
    with pytest.raises(InputError, match=r"unknown design 'welsh'\. Did you mean 'welch'\?"):
        DESIGNS.get("welsh")


def test_the_registration_names_a_class_and_a_subclass_does_not_inherit_its_bases_name() -> None:
    reg: Registry[object] = Registry("widget")

    @reg.register("base")
    class Base:
        pass

    @reg.register("derived")
    class Derived(Base):  # declares no name: the registration gives it one, not Base's
        pass

    assert Base.name == "base" and Derived.name == "derived"  # type: ignore[attr-defined]
    assert reg.get("derived") is Derived
