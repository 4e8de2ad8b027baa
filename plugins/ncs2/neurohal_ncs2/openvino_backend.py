"""OpenVINO: which devices it offers, IR graph -> OpenVINO IR (FP16 weights), and inference.

The OpenVINO IR (``.xml`` + ``.bin``) is what an NCS2 host loads; it travels inside the
artifact as two uint8 arrays. The MYRIAD plugin that drives the NCS2 ships with OpenVINO up to
the 2022.3 LTS archive release; newer releases offer CPU (and GPU/NPU) only, so there the model
runs on OpenVINO's CPU device with FP32 arithmetic on the FP16-rounded weights.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs
import numpy as np

from neurohal.errors import DeviceUnavailableError, PluginError
from neurohal.ir import Graph

MYRIAD = "MYRIAD"
CPU = "CPU"
CPU_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
"""The CPU device may default to bfloat16 on CPUs that have it; the stand-in must not."""


@attrs.frozen
class OpenVinoInfo:
    """The installed OpenVINO: version and devices, or why it cannot be used."""

    version: str = ""
    devices: tuple[str, ...] = ()
    error: str = ""

    @property
    def has_myriad(self) -> bool:
        return any(d.startswith(MYRIAD) for d in self.devices)


def runtime() -> object:
    """The module holding ``Core``, ``Tensor`` and ``get_version``: ``openvino`` itself from
    2023.1 on, ``openvino.runtime`` in the 2022.3 LTS release that still drives the NCS2."""
    import openvino

    if hasattr(openvino, "Core"):
        return openvino
    import openvino.runtime

    return openvino.runtime


@functools.cache
def info() -> OpenVinoInfo:
    """What OpenVINO offers here (cached: probing USB devices is slow); never raises."""
    try:
        ov = runtime()
        return OpenVinoInfo(ov.get_version(), tuple(ov.Core().available_devices))
    except Exception as exc:  # any failure means: not usable here, with the reason
        return OpenVinoInfo(error=f"{type(exc).__name__}: {exc}")


def choose_device(requested: str | None) -> str:
    """``MYRIAD`` when requested or available, else ``CPU``; a forced MYRIAD must exist."""
    found = info()
    if found.error:
        raise DeviceUnavailableError(
            f"OpenVINO is not usable ({found.error}); install it with `pip install openvino`"
        )
    if requested not in (None, MYRIAD, CPU):
        raise PluginError(f"ncs2: device must be {MYRIAD!r}, {CPU!r} or None, got {requested!r}")
    if requested == MYRIAD and not found.has_myriad:
        raise DeviceUnavailableError(
            f"device='MYRIAD' was forced but OpenVINO {found.version} offers "
            f"{list(found.devices)}: install the OpenVINO 2022.3.1 LTS archive (the last with "
            "the MYRIAD plugin) and plug in an NCS2, or omit device= to use the CPU stand-in"
        )
    if requested is None:
        return MYRIAD if found.has_myriad else CPU
    return requested


def to_openvino_ir(graph: Graph) -> tuple[bytes, bytes]:
    """The analog graph as OpenVINO IR ``(xml, bin)`` with weights compressed to FP16.

    Needs OpenVINO >= 2023.1 (``convert_model``, ``save_model``); the IR it writes is read by
    the 2022.3 LTS runtime on an NCS2 host.
    """
    import onnx
    import openvino as ov

    from neurohal.onnx_export import to_onnx

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        onnx.save(to_onnx(graph), onnx_path)
        # convert_model (unlike read_model) runs the offline simplifications, leaving only
        # opset1/opset8 operations that the 2022.3 LTS runtime with the MYRIAD plugin reads
        model = ov.convert_model(onnx_path)
        xml_path = Path(tmp) / "model.xml"
        ov.save_model(model, xml_path, compress_to_fp16=True)
        return xml_path.read_bytes(), xml_path.with_suffix(".bin").read_bytes()


@functools.lru_cache(maxsize=16)
def compiled_model(xml: bytes, weights: bytes, device: str, batch: int) -> object:
    """The model compiled for ``device`` with a static batch size (MYRIAD needs static shapes);
    cached so repeated runs of one artifact compile once."""
    ov = runtime()
    core = ov.Core()
    model = core.read_model(xml.decode("utf-8"), ov.Tensor(np.frombuffer(weights, np.uint8)))
    model.reshape(
        {
            p.get_any_name(): [batch, *(d.get_length() for d in list(p.get_partial_shape())[1:])]
            for p in model.inputs
        }
    )
    return core.compile_model(model, device, CPU_CONFIG if device == CPU else {})


def infer(compiled: object, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One synchronous inference; outputs under every name of each output tensor."""
    request = compiled.create_infer_request()
    results = request.infer(
        {name: np.ascontiguousarray(x, np.float32) for name, x in inputs.items()}
    )
    return {name: np.array(value) for out, value in results.items() for name in out.get_names()}
