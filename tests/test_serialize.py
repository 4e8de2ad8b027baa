"""`.nhir` files: round trips for every node type, old and newer schemas, damaged files."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from neurohal import ir, reference
from neurohal.errors import IRFormatError

FIXTURES = Path(__file__).parent / "fixtures"
RNG = np.random.default_rng(0)


def sample(type_name: str) -> tuple[ir.Node, tuple[int, ...], bool]:
    """One node of each type, its input shape, and whether it needs a spiking graph."""
    w = RNG.normal(size=(3, 2, 2, 2))
    return {
        "Dense": (ir.Dense(name="n", weight=RNG.normal(size=(3, 8)), bias=[1, 2, 3]), (8,), 0),
        "Conv2d": (
            ir.Conv2d(
                name="n", weight=w, bias=[0, 1, 2], stride=(1, 2), padding=(1, 0, 1, 0), dilation=1
            ),
            (2, 4, 4),
            0,
        ),
        "AvgPool2d": (ir.AvgPool2d(name="n", kernel=2, stride=1, padding=1), (2, 4, 4), 0),
        "SumPool2d": (ir.SumPool2d(name="n", kernel=(2, 1), stride=(2, 1)), (2, 4, 4), 0),
        "MaxPool2d": (ir.MaxPool2d(name="n", kernel=3, stride=2), (2, 4, 4), 0),
        "Flatten": (ir.Flatten(name="n"), (2, 4, 4), 0),
        "Reshape": (ir.Reshape(name="n", shape=(4, 2)), (8,), 0),
        "Add": (ir.Add(name="n"), (8,), 0),
        "Concat": (ir.Concat(name="n", num_inputs=1, axis=0), (8,), 0),
        "Scale": (ir.Scale(name="n", scale=[1, 2]), (2, 4, 4), 0),
        "ReLU": (ir.ReLU(name="n"), (8,), 0),
        "Clip": (ir.Clip(name="n", min=-1, max=2.5), (8,), 0),
        "Softmax": (ir.Softmax(name="n"), (8,), 0),
        "IF": (ir.IF(name="n", v_threshold=0.5, reset="zero", v_init=0.1), (8,), 1),
        "LIF": (ir.LIF(name="n", v_threshold=0.5, decay_v=0.1), (8,), 1),
        "CubaLIF": (ir.CubaLIF(name="n", v_threshold=2, decay_i=0.3, decay_v=0.2), (8,), 1),
        "Encoder": (ir.Encoder(name="n", kind="poisson", seed=3), (8,), 1),
        "Readout": (ir.Readout(name="n", kind="membrane"), (8,), 1),
        "Input": (None, (8,), 0),
        "Output": (None, (8,), 0),
    }[type_name]


def graph_with(type_name: str) -> ir.Graph:
    node, shape, spiking = sample(type_name)
    nodes = [ir.Input(name="x", shape=shape)]
    if spiking and type_name != "Encoder":
        nodes.append(ir.Encoder(name="enc"))
    if node is not None:
        nodes.append(node)
    if spiking and type_name != "Readout":
        nodes.append(ir.Readout(name="r"))
    nodes.append(ir.Output(name="out"))
    g = ir.chain(*nodes, metadata={"made_by": "test", "type": type_name})
    if isinstance(node, ir.Concat):
        g = ir.Graph(g.nodes, [ir.Edge("x", "n", "input0"), ir.Edge("n", "out")], g.metadata)
    return g


@pytest.mark.parametrize("type_name", sorted(ir.NODE_TYPES))
def test_round_trip_every_node_type(type_name, tmp_path):
    g = graph_with(type_name).validate()
    loaded = ir.load(ir.save(g, tmp_path / "g.nhir"))
    assert loaded == g
    x = RNG.random((2, *g.inputs[0].shape))
    t = 3 if g.is_spiking else None
    a, b = reference.run(g, x, t).outputs["out"], reference.run(loaded, x, t).outputs["out"]
    np.testing.assert_array_equal(a, b)


def fixture_graph() -> ir.Graph:
    """The graph stored in tests/fixtures/schema1_lenet_like.nhir, rebuilt by hand."""
    return ir.chain(
        ir.Input(name="x", shape=(1, 4, 4)),
        ir.Encoder(name="enc"),
        ir.Conv2d(
            name="conv",
            weight=np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2) / 8,
            bias=np.array([0.1, -0.1], dtype=np.float32),
            padding=1,
        ),
        ir.IF(name="if1", v_threshold=1.0, v_init=0.5),
        ir.AvgPool2d(name="pool", kernel=2, stride=2),
        ir.Flatten(name="flat"),
        ir.Dense(name="fc", weight=np.ones((3, 8), dtype=np.float32) / 8),
        ir.Readout(name="readout"),
        ir.Output(name="out"),
        metadata={"fixture": "schema 1, written by neurohal 0.1.0"},
    )


def test_old_schema_fixture_still_reads():
    loaded = ir.load(FIXTURES / "schema1_lenet_like.nhir")
    assert loaded == fixture_graph()


def test_newer_schema_is_refused_with_upgrade_hint(tmp_path):
    path = ir.save(fixture_graph(), tmp_path / "new.nhir")
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = ir.SCHEMA_VERSION + 1
    with pytest.raises(IRFormatError, match="newer.*upgrade neurohal"):
        ir.load(path)


def damage(path: Path, how: str) -> None:
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 20)
    elif how == "text":
        path.write_text("not hdf5 at all")
    else:
        with h5py.File(path, "r+") as f:
            if how == "bad_json":
                f.attrs["edges"] = "[[1, 2"
            elif how == "wrong_type_param":
                f["nodes/3"].attrs["params"] = '{"name": "if1", "v_threshold": "high"}'
            elif how == "unknown_node":
                f["nodes/3"].attrs["type"] = "os.system"
            elif how == "object_dataset":
                del f["nodes/2/weight"]
                f["nodes/2"].create_dataset(
                    "weight", data=np.array([b"rm -rf"], dtype=object), dtype=h5py.string_dtype()
                )
            elif how == "external_link":
                del f["nodes/2/weight"]
                f["nodes/2/weight"] = h5py.ExternalLink("/etc/passwd", "/x")
            elif how == "soft_link":
                f["nodes/9"] = h5py.SoftLink("/nodes/0")
            elif how == "missing_nodes":
                del f["nodes"]
            elif how == "not_ours":
                f.attrs["format"] = "something-else"
            elif how == "dangling_edge":
                f.attrs["edges"] = '[["x", "ghost", "input"]]'


@pytest.mark.parametrize(
    "how",
    [
        "truncated",
        "garbage",
        "text",
        "bad_json",
        "wrong_type_param",
        "unknown_node",
        "object_dataset",
        "external_link",
        "soft_link",
        "missing_nodes",
        "not_ours",
        "dangling_edge",
    ],
)
def test_damaged_or_hostile_files_raise_format_error(how, tmp_path):
    path = ir.save(fixture_graph(), tmp_path / "g.nhir")
    damage(path, how)
    with pytest.raises(IRFormatError, match=str(path.name)):
        ir.load(path)


def test_missing_file_and_failed_save_leave_nothing(tmp_path):
    with pytest.raises(IRFormatError, match="no such file"):
        ir.load(tmp_path / "absent.nhir")
    bad = ir.chain(
        ir.Input(name="x", shape=(2,)),
        ir.Dense(name="d", weight=np.ones((1, 3))),
        ir.Output(name="out"),
    )
    with pytest.raises(Exception, match="'d'"):
        ir.save(bad, tmp_path / "bad.nhir")
    assert list(tmp_path.iterdir()) == []
