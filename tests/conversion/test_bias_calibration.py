"""Bias calibration for a timestep budget, judged by hand-computed runs, the ANN itself and
MNIST accuracy."""

import attrs
import numpy as np
import pytest
from conversion_graphs import lenet_like, residual

import neurohal as nh
from neurohal import ir
from neurohal.conversion import ConversionConfig, calibrate, evaluate, simulate
from neurohal.conversion.bias_calibration import analog_twin, bias_entry, calibrate_biases
from neurohal.errors import ConversionError


def _one_neuron(bias: float = 0.0) -> ir.Graph:
    return ir.chain(
        ir.Input(name="x", shape=(1,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc1", weight=[[1.0]], bias=[bias]),
        ir.IF(name="if1", v_threshold=1.0, v_init=0.5),
        ir.Dense(name="fc2", weight=[[1.0]]),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )


def test_correction_is_the_hand_computed_mean_rate_error() -> None:
    # T = 4, v_init 0.5, threshold 1. x = 0.3: v 0.8, 1.1 (spike) 0.1, 0.4, 0.7 -> rate 0.25;
    # x = 0.6: v 1.1 (spike) 0.1, 0.7, 1.3 (spike) 0.3, 0.9 -> rate 0.5. The twin gives 0.3
    # and 0.6, so the mean error, added to fc1's bias, is (0.05 + 0.1) / 2 = 0.075.
    snn, corrections = calibrate_biases(_one_neuron(), np.array([[0.3], [0.6]]), 4)
    np.testing.assert_allclose(snn.node("fc1").bias, [0.075], rtol=1e-12)
    assert corrections == pytest.approx({"if1": 0.075})


def test_analog_twin_of_a_converted_net_is_the_ann(images: np.ndarray) -> None:
    ann = lenet_like(activation="clip")
    snn = nh.convert(ann, images)
    want = evaluate(ann, images, ["out"])["out"]
    got = evaluate(analog_twin(snn), images, ["out"])["out"]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_bias_entry_follows_scales_and_adds(images: np.ndarray) -> None:
    snn = nh.convert(residual(), images[:, :, :6, :6])
    # block_out = IF(join), join = Add(b2 -> Scale?, skip h -> Scale): the b2 branch carries
    # the bias; its factor is whatever Scale lies between b2 and the join (none here: b2's
    # weights are rescaled to the join's scale)
    name, factor = bias_entry(snn, "block_out")
    assert name == "b2"
    np.testing.assert_array_equal(factor, 1.0)
    scaled = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.Encoder(name="enc"),
        ir.Dense(name="fc", weight=np.eye(2)),
        ir.Scale(name="s", scale=np.array([2.0, 4.0])),
        ir.IF(name="if1", v_threshold=1.0),
        ir.Readout(name="r"),
        ir.Output(name="out"),
    )
    name, factor = bias_entry(scaled, "if1")
    assert name == "fc"
    np.testing.assert_array_equal(factor, [2.0, 4.0])
    # currents 0.6 and 1.2 for T = 4 from v = 0: rates 0.5 (v 0.6, 1.2 s, 0.8, 1.4 s) and 1.0;
    # the twin wants 0.6 and 1.0 -> errors 0.1 and 0, so the current into if1 must rise by
    # 0.1 and 0 (bias 0.05 and 0 before the Scale)
    calibrated, _ = calibrate_biases(scaled, np.array([[0.3, 0.3]]), 4)
    np.testing.assert_allclose(calibrated.node("fc").bias, [0.05, 0.0], atol=1e-15)
    rec = nh.reference.run(calibrated, np.array([[0.3, 0.3]]), 4, record=["s"]).records["s"]
    np.testing.assert_allclose(rec[0, 0], [0.7, 1.2], rtol=1e-12)


def test_recovers_accuracy_at_four_timesteps() -> None:
    """resnet_small at T = 4: bias calibration on 128 training images must gain at least 20
    points on 200 test images over the same recipe without it (measured: ~60 points)."""
    ann = nh.load_onnx(nh.zoo.path("resnet_small"))
    cal, _ = nh.datasets.mnist("train", 128)
    x, y = nh.datasets.mnist("test", 200)
    plain = nh.convert(ann, cal)
    tuned = nh.convert(ann, cal, ConversionConfig(bias_calibration_timesteps=4))
    meta = tuned.metadata["conversion"]["bias_calibration"]
    assert meta["timesteps"] == 4 and meta["samples"] == 128
    acc = {k: np.mean(simulate(g, x, 4)["logits"].argmax(1) == y) for k, g in
           {"plain": plain, "tuned": tuned}.items()}  # fmt: skip
    assert acc["tuned"] >= acc["plain"] + 0.2, acc


def test_needs_the_data_itself(images: np.ndarray) -> None:
    ann = lenet_like(activation="clip")
    config = ConversionConfig(bias_calibration_timesteps=8)
    with pytest.raises(ConversionError, match="runs the SNN on calibration data"):
        nh.convert(ann, None, config)
    with pytest.raises(ConversionError, match="not CalibrationStats"):
        nh.convert(ann, calibrate(ann, images), config)
    with pytest.raises(ValueError, match="bias_calibration_timesteps must be >= 0"):
        attrs.evolve(config, bias_calibration_timesteps=-1)
