"""The converter on a shipped model and real MNIST images, judged by the reference."""

import numpy as np

import neurohal as nh
from neurohal import reference


def test_lenet5_snn_agrees_with_its_ann_at_few_timesteps():
    ann = nh.load_onnx(nh.zoo.path("lenet5"))
    snn = nh.convert(ann)  # QCFS-trained Clip(0, lam) bounds: no calibration data needed
    assert snn.kind == "snn"
    x, y = nh.datasets.mnist("test", 24)
    expected = reference.run(ann, x).outputs["logits"].argmax(1)
    got = reference.run(snn, x, timesteps=8).outputs["logits"].argmax(1)
    assert np.sum(got != expected) <= 1
    assert np.mean(got == y) >= 0.95
