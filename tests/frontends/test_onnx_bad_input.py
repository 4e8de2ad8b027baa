"""Bad ONNX input: each a clear ConversionError naming the file or node, raised before any work;
check_onnx lists every unsupported node at once."""

import numpy as np
import onnx
import pytest
from frontend_helpers import build_model, matches_onnx
from onnx import helper, numpy_helper

from neurohal.errors import ConversionError, NeurohalError
from neurohal.frontends import SUPPORTED_OPS, check_onnx, load_onnx


def conv_model(weight=None, opset=13):
    weight = np.ones((2, 3, 3, 3), np.float32) if weight is None else weight
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv1"),
        helper.make_node("Relu", ["c"], ["y"], name="relu1"),
    ]
    return build_model(nodes, (3, 5, 5), {"W": weight}, opset)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(conv_model().SerializeToString()[:40])
    with pytest.raises(ConversionError, match="broken.onnx"):
        load_onnx(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff\xfe not a protobuf at all \x00\x01")
    with pytest.raises(ConversionError, match="garbage.onnx"):
        load_onnx(str(garbage))


def test_missing_file(tmp_path):
    with pytest.raises(ConversionError, match="nothere.onnx"):
        load_onnx(tmp_path / "nothere.onnx")


def save_with_external_weight(model, folder, location):
    """Save ``model`` with its initializer W stored in the file ``location`` (relative to
    ``folder``), which may point anywhere."""
    weight = numpy_helper.to_array(model.graph.initializer[0])
    data = folder / location
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_bytes(weight.tobytes())
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(weight.nbytes))):
        tensor.external_data.add(key=key, value=value)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_the_folder_loads(tmp_path):
    weight = np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32)
    path = save_with_external_weight(conv_model(weight), tmp_path, "weights/w.bin")
    graph = load_onnx(path)
    np.testing.assert_array_equal(graph.node("conv1").weight, weight)
    assert dict(graph.metadata)["source"]["file"] == "model.onnx"


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    path = save_with_external_weight(conv_model(), folder, location)
    assert (tmp_path / "secret.bin").exists()
    with pytest.raises(ConversionError, match="outside the model's folder"):
        load_onnx(path)
    with pytest.raises(ConversionError, match="outside the model's folder"):
        check_onnx(path)


def test_absolute_external_path_is_refused(tmp_path):
    secret = tmp_path / "elsewhere" / "secret.bin"
    folder = tmp_path / "model"
    folder.mkdir()
    path = save_with_external_weight(conv_model(), folder, str(secret))
    with pytest.raises(ConversionError, match="outside the model's folder"):
        load_onnx(path)


def test_in_memory_model_with_external_data_is_refused(tmp_path):
    path = save_with_external_weight(conv_model(), tmp_path, "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    with pytest.raises(ConversionError, match="external"):
        load_onnx(model)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_weights_name_the_node(bad):
    weight = np.ones((2, 3, 3, 3), np.float32)
    weight[1, 2, 0, 0] = bad
    with pytest.raises(ConversionError, match=r"node 'conv1' \(Conv\).*NaN or infinite"):
        load_onnx(conv_model(weight))


def unsupported_model():
    """Three unsupported nodes (and a NaN weight, which must not be reached)."""
    weight = np.ones((2, 3, 3, 3), np.float32)
    weight[0, 0, 0, 0] = np.nan
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv1"),
        helper.make_node("Sin", ["c"], ["s"], name="my_sin"),
        helper.make_node("LeakyRelu", ["s"], ["l"], name="leaky"),
        helper.make_node(
            "AveragePool", ["l"], ["y"], name="pool", kernel_shape=[2, 2], pads=[1, 1, 1, 1]
        ),
    ]
    return build_model(nodes, (3, 5, 5), {"W": weight}, 13)


def test_unsupported_operator_fails_up_front_with_node_operator_and_list():
    with pytest.raises(ConversionError) as info:
        load_onnx(unsupported_model())
    message = str(info.value)
    assert "node 'my_sin' (Sin)" in message
    assert "supported operators: " + ", ".join(SUPPORTED_OPS) in message
    assert "NaN" not in message  # refused before any translation work


def test_check_onnx_lists_every_unsupported_node():
    found = check_onnx(unsupported_model())
    assert [(p.name, p.op_type) for p in found] == [
        ("my_sin", "Sin"),
        ("leaky", "LeakyRelu"),
        ("pool", "AveragePool"),
    ]
    assert "count_include_pad=0" in found[2].reason
    assert check_onnx(conv_model()) == []


def test_constant_only_operators_are_folded_not_refused():
    """Sin is unsupported on activations, but a Sin of a constant is folded away."""
    angles = np.linspace(0, 3, 18, dtype=np.float32).reshape(2, 1, 3, 3)
    nodes = [
        helper.make_node("Sin", ["a"], ["W"], name="weights_from_sin"),
        helper.make_node("Conv", ["x", "W"], ["y"], name="conv"),
    ]
    model = build_model(nodes, (1, 4, 4), {"a": angles}, 13)
    assert check_onnx(model) == []
    graph = matches_onnx(model, (1, 4, 4))
    np.testing.assert_allclose(graph.node("conv").weight, np.sin(angles), rtol=1e-6)


def test_weights_that_are_activations_are_refused():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="r"),
        helper.make_node("Gemm", ["x", "r"], ["y"], name="gemm", transB=1),
    ]
    found = check_onnx(build_model(nodes, (4,), opset=13))
    assert [(p.name, p.op_type) for p in found] == [("gemm", "Gemm")]
    assert "must be a constant" in found[0].reason


@pytest.mark.parametrize(
    "case",
    ["flatten_axis2", "concat_batch", "reshape_batch", "softmax_spatial", "avgpool_ceil", "opset8"],
)
def test_shapes_the_ir_cannot_express_are_refused(case):
    shape, inits, opset = (2, 4, 4), {}, 13
    if case == "flatten_axis2":
        nodes = [helper.make_node("Flatten", ["x"], ["y"], name="fl", axis=2)]
    elif case == "concat_batch":
        nodes = [helper.make_node("Concat", ["x", "x"], ["y"], name="cat", axis=0)]
    elif case == "reshape_batch":
        inits = {"s": np.array([-1, 4, 4], np.int64)}
        nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")]
    elif case == "softmax_spatial":
        nodes = [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=-1)]
    elif case == "avgpool_ceil":
        shape = (2, 5, 5)
        nodes = [
            helper.make_node(
                "AveragePool",
                ["x"],
                ["y"],
                name="ap",
                kernel_shape=[2, 2],
                strides=[2, 2],
                ceil_mode=1,
            )
        ]
    else:
        nodes, opset = [helper.make_node("Relu", ["x"], ["y"], name="r")], 8
    model = build_model(nodes, shape, inits, opset)
    if case in ("flatten_axis2", "concat_batch"):  # knowable without shapes
        assert [p.name for p in check_onnx(model)] == [nodes[0].name]
    with pytest.raises(NeurohalError) as info:
        load_onnx(model)
    assert isinstance(info.value, ConversionError)
    assert ("opset 8" if case == "opset8" else f"node '{nodes[0].name}'") in str(info.value)


def product_model(op, constant):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu1"),
        helper.make_node(op, ["r", "k"], ["y"], name="scale1"),
    ]
    return build_model(nodes, (3, 4, 4), {"k": constant}, 13)


def test_a_product_of_two_activations_is_listed_up_front():
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu1"),
        helper.make_node("Mul", ["r", "x"], ["y"], name="square"),
    ]
    (found,) = check_onnx(build_model(nodes, (3, 4, 4), {}, 13))
    assert (found.name, found.op_type) == ("square", "Mul")
    assert "two activations" in found.reason


def test_dividing_by_an_activation_is_listed_up_front():
    nodes = [helper.make_node("Div", ["k", "x"], ["y"], name="inverse")]
    (found,) = check_onnx(build_model(nodes, (3,), {"k": np.ones(3, np.float32)}, 13))
    assert found.name == "inverse" and "input 0 ('k') must be an activation" in found.reason


def test_a_factor_varying_within_a_channel_names_the_node_and_shape():
    varying = np.arange(48, dtype=np.float32).reshape(3, 4, 4)
    with pytest.raises(ConversionError, match=r"node 'scale1' \(Mul\).*\(3, 4, 4\).*per channel"):
        load_onnx(product_model("Mul", varying))


def test_dividing_by_zero_names_the_node():
    with pytest.raises(ConversionError, match=r"node 'scale1' \(Div\).*zeros"):
        load_onnx(product_model("Div", np.array([1.0, 0.0, 2.0], np.float32).reshape(3, 1, 1)))
