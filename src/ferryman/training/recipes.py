"""Which training function a recipe name means: a built-in recipe or the user's own code.

Built-in: ``image-classifier``, ``digits`` (the image recipe on the built-in digits data),
``tabular-classifier`` and ``tiny-lm`` (a small language model: training/language.py).
Anything written ``module:function`` (or ``module/function``, the form a run records) names
the user's own function, imported from the working directory or the installed packages; it
must take a :class:`RunContext`.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from ferryman.errors import InvalidInput
from ferryman.training.runner import TrainFunction

BUILT_IN = ("digits", "image-classifier", "tabular-classifier", "tiny-lm")


def recipe_key(name: str) -> str:
    """The name a run records: ``module:function`` becomes ``module/function``."""
    return name.replace(":", "/")


def resolve_recipe(name: str) -> TrainFunction:
    """The training function ``name`` stands for; PyTorch and scikit-learn load only here."""
    if name in {"digits", "image-classifier"}:
        from ferryman.training.image import train_image_classifier  # noqa: PLC0415 - torch

        return train_image_classifier
    if name == "tabular-classifier":
        from ferryman.training.tabular import train_tabular_classifier  # noqa: PLC0415 - sklearn

        return train_tabular_classifier
    if name == "tiny-lm":
        from ferryman.training.language import train_tiny_lm  # noqa: PLC0415 - transformers

        return train_tiny_lm
    module_name, sep, function_name = recipe_key(name).partition("/")
    if not sep:
        raise InvalidInput(
            f"recipe {name!r} is not known; use one of {', '.join(BUILT_IN)}, "
            "or your own function as module:function"
        )
    return _user_function(module_name, function_name)


def _user_function(module_name: str, function_name: str) -> TrainFunction:
    working_dir = str(Path.cwd())
    if working_dir not in sys.path:
        sys.path.insert(0, working_dir)  # as `python -m` would: the user's code is here
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"cannot import {module_name!r} for the recipe: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise InvalidInput(f"{module_name} has no function {function_name!r} to train with")
    trained: TrainFunction = function
    return trained
