"""Frontends: ONNX and PyTorch models -> canonical IR graphs (``neurohal.frontends.canonical``).

``load_onnx`` and ``check_onnx`` live in ``neurohal.frontends.onnx``; ``load_torch`` in
``neurohal.frontends.torch``, the only module that imports torch.
"""

from neurohal.frontends.onnx import SUPPORTED_OPS, UnsupportedNode, check_onnx, load_onnx

__all__ = ["SUPPORTED_OPS", "UnsupportedNode", "check_onnx", "load_onnx"]
