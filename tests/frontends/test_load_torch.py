"""load_torch round trip: torchvision-style VGG and ResNet (built here, random weights and
BatchNorm statistics) load, pass the canonical passes and match torch's own outputs."""

import numpy as np
import pytest
import torch
from frontend_helpers import relative_error
from torch import nn

import neurohal
from neurohal.errors import ConversionError
from neurohal.ir import NODE_TYPES
from neurohal.reference import run


def conv_bn_relu(cin, cout, stride=1):
    return [
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class VGG(nn.Module):
    """torchvision's VGG layout (vgg11_bn-like, narrow): features, adaptive pool, classifier."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(3, 8),
            nn.MaxPool2d(2, 2),
            *conv_bn_relu(8, 16),
            nn.MaxPool2d(2, 2),
            *conv_bn_relu(16, 16),
            *conv_bn_relu(16, 16),
            nn.MaxPool2d(2, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 2 * 2, 32),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(32, 32),
            nn.ReLU(True),
            nn.Dropout(),
            nn.Linear(32, num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock, with a 1x1-conv + BN downsample when the shape changes."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout (resnet18-like, two stages, narrow)."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2), BasicBlock(16, 16))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        x = self.avgpool(x)
        return self.fc(x.view(x.size(0), -1))


def randomise_batchnorm(module, seed):
    """Non-trivial running statistics and affine parameters, so folding BatchNorm matters."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)


@pytest.mark.parametrize("cls", [VGG, ResNet])
def test_torchvision_style_models_match_torch(cls):
    torch.manual_seed(0)
    module = cls()
    randomise_batchnorm(module, 1)
    module.train()
    graph = neurohal.load_torch(module, torch.zeros(1, 3, 32, 32))
    assert module.training, "load_torch must leave the module's training flag alone"
    assert all(n.type_name in NODE_TYPES for n in graph.nodes)
    assert not any(n.type_name in ("BatchNorm", "Dropout") for n in graph.nodes)
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    module.eval()
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    (ours,) = run(graph, x).outputs.values()
    assert ours.shape == expected.shape == (4, 10)
    assert relative_error(ours, expected) <= 1e-4
    assert dict(graph.metadata)["source"]["format"] == "torch"
    assert dict(graph.metadata)["source"]["module"] == cls.__name__


def test_resnet_keeps_residual_adds():
    graph = neurohal.load_torch(ResNet().eval(), torch.zeros(1, 3, 32, 32))
    adds = [n for n in graph.nodes if n.type_name == "Add"]
    assert len(adds) == 4 and all(len(graph.sources(a.name)) == 2 for a in adds)


class Normalised(nn.Module):
    """Input normalisation inside the model, a halving after an activation and a difference
    of two branches: Sub, Div and Mul in the exported graph."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.side = nn.Conv2d(3, 4, 1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        h = torch.relu(self.conv(x)) * 0.5 - self.side(x)
        return self.fc(h.flatten(1)) / 4.0


def test_elementwise_arithmetic_with_constants_matches_torch():
    torch.manual_seed(3)
    module = Normalised().eval()
    graph = neurohal.load_torch(module, torch.zeros(1, 3, 8, 8))
    assert all(n.type_name in NODE_TYPES for n in graph.nodes)
    x = np.random.default_rng(4).random((5, 3, 8, 8), dtype=np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    (ours,) = run(graph, x).outputs.values()
    assert relative_error(ours, expected) <= 1e-4


def test_module_torch_cannot_export_is_a_conversion_error():
    class Bad(nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x)

    with pytest.raises(ConversionError, match="Bad"):
        neurohal.load_torch(Bad(), torch.zeros(1, 3, 3))


def test_not_a_module_is_refused():
    with pytest.raises(ConversionError, match=r"torch\.nn\.Module"):
        neurohal.load_torch(lambda x: x, torch.zeros(1, 3))
