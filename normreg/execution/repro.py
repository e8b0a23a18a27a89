"""`normreg repro`: one run of a suite as a standalone Python script that does not import normreg.

The script is the runner's sequence, written out: put the suite's folder on the path, seed, build the data
module and the model, seed again, build the Trainer with normreg's options and the suite's, fit, then test (or
validate, for a model without a test_step), and print each logged value. Run on the same machine, with the
same torch thread count, it prints the values `normreg run` recorded for that (variant, seed).
"""

from __future__ import annotations

import ast
import pprint
from typing import Any

from normreg.errors import InputError
from normreg.execution.worker import TRAINER_OPTIONS, flavour_of
from normreg.suite.model import MAX_SEED_VALUE, Suite, Target

# The script's text is fixed: every name and value of the run (suite, variant, folder, targets, arguments, trainer
# options) goes into RUN as one Python literal made by `repr` and checked by `ast.literal_eval`, never into the
# code, a comment or the docstring. No name or value can become code, whatever it holds.
TEMPLATE = '''\
"""Reproduces one run of a normreg suite: the suite, variant and seed are named in RUN below.

Written by `normreg repro`; needs only {flavour_package}, torch and your own code. It repeats what normreg's
runner does, step for step, so it prints the same values as `normreg run` on the same machine, with the same
number of torch threads on the CPU (the report's runs record it as `threads`; each normreg worker takes
cores // workers; call torch.set_num_threads(N) first to match a run made with another count):

  1. seed_everything(seed, workers=True)  before the data module and the model are built, so their
     construction (random weights, random data) is seeded;
  2. build the data module (if the suite has one) and the model;
  3. seed_everything(seed, workers=True)  again, so the data order and every random draw during training do not
     depend on how many random numbers building the model took: variants with different architectures still
     see the same batches in the same order;
  4. Trainer(accelerator="auto", devices=1, deterministic=True, + the suite's trainer options), fit;
  5. test (validate when the model has no test_step) and print each logged value.
"""

import importlib
import sys

import {flavour} as pl

# Everything about the run, as data.
RUN = {run}

SEED = RUN["seed"]
sys.path[:0] = [RUN["suite_folder"]]  # as normreg does: a module next to the suite imports without being installed


def target(spec):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def build(call):
    return None if call is None else target(call["target"])(**call["args"])


def main():
    pl.seed_everything(SEED, workers=True, verbose=False)
    datamodule = build(RUN["data"])
    model = build(RUN["model"])
    pl.seed_everything(SEED, workers=True, verbose=False)
    trainer = pl.Trainer(**RUN["trainer"])
    trainer.fit(model, datamodule=datamodule)
    evaluate = trainer.test if RUN["evaluate"] == "test" else trainer.validate
    values = {{}}
    for output in evaluate(model, datamodule=datamodule, verbose=False) or []:
        values.update({{name: float(value) for name, value in output.items()}})
    for name in sorted(values):
        print(f"{{name}}={{values[name]!r}}")


if __name__ == "__main__":
    main()
'''

FLAVOURS = {"pytorch_lightning": "pytorch_lightning", "lightning.pytorch": "lightning"}  # module -> its package


def _literal(value: Any, what: str) -> str:
    """`value` as Python source that evaluates to it and can be nothing else: a literal, or an `InputError` naming
    the key path of the first value that has no literal form (a YAML timestamp, `.nan`)."""
    text = pprint.pformat(value, width=110, sort_dicts=False)
    if _reads_back(text, value):
        return text
    key, bad = _first_non_literal(value, "")
    raise InputError(f"{what}: {key or 'a value'} is {bad!r}, which cannot be written into a standalone script as "
                     "data; give plain numbers, strings, lists and mappings")


def _reads_back(text: str, value: Any) -> bool:
    try:
        return bool(ast.literal_eval(text) == value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def _first_non_literal(value: Any, where: str) -> tuple[str, Any]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) \
        else None
    if items is None:
        return where, value
    for k, v in items:
        if not _reads_back(repr(v), v):
            return _first_non_literal(v, f"{where}.{k}" if where else str(k))
    return where, value


def _call(target: Target | None) -> dict[str, Any] | None:
    return None if target is None else {"target": target.spec, "args": dict(sorted(target.args.items()))}


def render_script(run: dict[str, Any], flavour: str) -> str:
    """The script's text for `run` (suite, variant, seed, suite_folder, model, data, trainer, evaluate), with
    Lightning imported as `flavour`; `run` enters the code only as the literal `RUN`."""
    if flavour not in FLAVOURS:
        raise InputError(f"the model subclasses {flavour!r}, not pytorch_lightning or lightning.pytorch")
    return TEMPLATE.format(flavour=flavour, flavour_package=FLAVOURS[flavour],
                           run=_literal(run, f"variant {run.get('variant')!r}"))


def repro_script(suite: Suite, variant: str, seed: int) -> str:
    """The standalone script that trains `variant` with `seed` as `normreg run` does and prints its metrics."""
    suite.check_variant(variant)
    if not 0 <= seed <= MAX_SEED_VALUE:
        raise InputError(f"expected --seed from 0 to {MAX_SEED_VALUE} (the seeds `normreg run` accepts), got {seed}")
    v = suite.variant(variant)
    from normreg.suite.targets import build, importable

    importable([suite.directory])
    model = build(suite, v.model, "model")  # the flavour it subclasses, and whether it has a test_step
    pl = flavour_of(model)
    overridden = __import__(f"{pl.__name__}.utilities.model_helpers", fromlist=["is_overridden"]).is_overridden
    run = {"suite": suite.name, "variant": variant, "seed": int(seed), "suite_folder": str(suite.directory.resolve()),
           "model": _call(v.model), "data": _call(v.data), "trainer": dict(sorted({**TRAINER_OPTIONS,
                                                                                   **v.trainer}.items())),
           "evaluate": "test" if overridden("test_step", model) else "validate"}
    return render_script(run, pl.__name__)
