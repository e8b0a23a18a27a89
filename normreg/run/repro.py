"""`normreg repro`: one run of a suite as a standalone Python script that does not import normreg.

The script is the runner's sequence, written out: put the suite's folder on the path, seed, build the data
module and the model, seed again, build the Trainer with normreg's options and the suite's, fit, then test (or
validate, for a model without a test_step), and print each logged value. Run on the same machine, with the
same torch thread count, it prints the values `normreg run` recorded for that (variant, seed).
"""

from __future__ import annotations

import ast
from typing import Any

from normreg.errors import InputError, did_you_mean
from normreg.run.worker import TRAINER_OPTIONS, flavour_of
from normreg.suite.spec import Suite, Target

TEMPLATE = '''\
"""Reproduces one run of normreg suite {suite!r}: variant {variant!r}, seed {seed}.

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

SEED = {seed}
SUITE_FOLDER = {folder!r}
sys.path[:0] = [SUITE_FOLDER]  # as normreg does: a module next to the suite imports without being installed


def target(spec):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main():
    pl.seed_everything(SEED, workers=True, verbose=False)
    datamodule = {data}
    model = target({model_spec!r})(**{model_args})
    pl.seed_everything(SEED, workers=True, verbose=False)
    trainer = pl.Trainer(**{options})
    trainer.fit(model, datamodule=datamodule)
    evaluate = {evaluate}
    values = {{}}
    for output in evaluate(model, datamodule=datamodule, verbose=False) or []:
        values.update({{name: float(value) for name, value in output.items()}})
    for name in sorted(values):
        print(f"{{name}}={{values[name]!r}}")


if __name__ == "__main__":
    main()
'''


def _literal(value: Any) -> str:
    text = repr(dict(sorted(value.items())) if isinstance(value, dict) else value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise InputError(f"the value {text} cannot be written into a standalone script") from None
    return text


def _call(target: Target) -> str:
    return f"target({target.spec!r})(**{_literal(dict(target.args))})"


def repro_script(suite: Suite, variant: str, seed: int) -> str:
    """The standalone script that trains `variant` with `seed` as `normreg run` does and prints its metrics."""
    names = [v.name for v in suite.variants]
    if variant not in names:
        raise InputError(f"{suite.path}: unknown variant '{variant}'.{did_you_mean(variant, names)} "
                         f"Variants: {', '.join(names)}")
    v = suite.variant(variant)
    from normreg.suite.targets import build, importable

    importable([suite.directory])
    model = build(suite, v.model, "model")  # the flavour it subclasses, and whether it has a test_step
    pl = flavour_of(model)
    overridden = __import__(f"{pl.__name__}.utilities.model_helpers", fromlist=["is_overridden"]).is_overridden
    return TEMPLATE.format(
        suite=suite.name, variant=variant, seed=int(seed), flavour=pl.__name__,
        flavour_package="lightning" if pl.__name__.startswith("lightning") else "pytorch_lightning",
        folder=str(suite.directory.resolve()),
        data=_call(v.data) if v.data is not None else "None",
        model_spec=v.model.spec, model_args=_literal(dict(v.model.args)),
        options=_literal({**TRAINER_OPTIONS, **v.trainer}),
        evaluate="trainer.test" if overridden("test_step", model) else "trainer.validate  # the model has no test_step",
    )
