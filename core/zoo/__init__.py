"""Pre-trained MNIST models shipped as ONNX files, made for ANN-to-SNN conversion.

``models.json`` beside this file records each model's file, architecture, training recipe,
trained clip values and its test accuracy measured with onnxruntime on the shipped file.
``scripts/train_zoo.py`` regenerates both. Hidden activations are ``Clip(0, lambda)`` (trained
as QCFS); inputs are MNIST pixels in [0, 1], outputs raw logits.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

from ..errors import ZooError

__all__ = ["info", "names", "path"]

_ZOO_DIR = Path(__file__).resolve().parent
_INDEX = _ZOO_DIR / "models.json"


def names() -> list[str]:
    """The names of the shipped models, sorted."""
    return sorted(_index())


def info(name: str) -> dict[str, Any]:
    """A copy of the models.json record of ``name`` (accuracy, lambdas, recipe, versions...)."""
    return copy.deepcopy(_entry(name))


def path(name: str) -> Path:
    """The ONNX file of ``name``; a `ZooError` if the zoo lists it but the file is missing."""
    file = _ZOO_DIR / _entry(name)["file"]
    if not file.is_file():
        raise ZooError(f"zoo model {name!r}: file {file} is missing; reinstall neurohal")
    return file


def _entry(name: str) -> dict[str, Any]:
    models = _index()
    if name not in models:
        raise ZooError(f"unknown zoo model {name!r}; known models: {', '.join(sorted(models))}")
    return models[name]


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_INDEX.read_text(encoding="utf-8"))["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ZooError(f"cannot read the zoo index {_INDEX}: {exc}") from exc
