"""NCS2 plugin vs the float ANN (reference interpreter) on the full MNIST test set, per zoo model.

The ncs2 device runs the ANN with FP16 weights through OpenVINO (on a MYRIAD stick when present,
else OpenVINO's CPU device as a numerical stand-in). Usage: python benchmarks/ncs2_zoo_accuracy.py
"""

import numpy as np

import neurohal as nh

x, y = nh.datasets.mnist("test")
dev = nh.device("ncs2")
for name in nh.zoo.names():
    ann = nh.load_onnx(nh.zoo.path(name))
    art = dev.compile(ann)
    out = np.concatenate([dev.run(art, x[i : i + 1000]).output() for i in range(0, len(x), 1000)])
    ref = np.concatenate(
        [
            nh.reference.run(ann, x[i : i + 1000]).outputs[ann.outputs[0].name]
            for i in range(0, len(x), 1000)
        ]
    )
    a, b = (out.argmax(1) == y).mean(), (ref.argmax(1) == y).mean()
    print(
        f"{name}: float ANN (reference) {100 * b:.2f}%  ncs2 {100 * a:.2f}%  "
        f"diff {100 * (a - b):+.2f} pt ({dev.probe().details.get('runs_on', 'see probe')})"
    )
