"""PyTorch -> IR: ``load_torch`` exports a module to ONNX in memory, then uses ``load_onnx``.

The export uses torch's TorchScript-based exporter (``dynamo=False``: the torch.export-based one
needs onnxscript, which is not a dependency) at opset 17, in inference mode, without torch's own
constant folding, so BatchNorm and Dropout reach neurohal's canonical passes. This is the only
module of neurohal that imports torch.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch

from neurohal.errors import ConversionError
from neurohal.frontends.onnx import load_onnx
from neurohal.ir import Graph

OPSET = 17


def load_torch(module: torch.nn.Module, example_input: torch.Tensor | np.ndarray) -> Graph:
    """Convert ``module`` (evaluated in inference mode) into a canonical ANN graph.

    ``example_input`` is one batch-first input, e.g. ``torch.zeros(1, 1, 28, 28)``; it fixes
    the per-sample shape. The module's training flag is left as it was.
    """
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"load_torch needs a torch.nn.Module, got {type(module).__name__}")
    x = torch.as_tensor(
        np.asarray(example_input) if isinstance(example_input, np.ndarray) else example_input,
        dtype=torch.float32,
    )
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                module,
                (x,),
                buffer,
                opset_version=OPSET,
                dynamo=False,
                training=torch.onnx.TrainingMode.EVAL,
                do_constant_folding=False,
                input_names=["input"],
                output_names=["output"],
            )
    except Exception as exc:
        raise ConversionError(
            f"torch could not export {type(module).__name__} to ONNX: {type(exc).__name__}: {exc}"
        ) from exc
    graph = load_onnx(onnx.load_from_string(buffer.getvalue()))
    source = {**graph.metadata["source"], "format": "torch", "module": type(module).__name__}
    return graph.with_metadata(source=source)
