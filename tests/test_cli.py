"""The command line: inspect output, JSON mode, and one-line errors instead of tracebacks."""

import json
from pathlib import Path

from click.testing import CliRunner

from neurohal.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "schema1_lenet_like.nhir"


def test_inspect_json_lists_nodes_shapes_and_parameters():
    result = CliRunner().invoke(main, ["inspect", str(FIXTURE), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "snn"
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert layers["conv"]["shape"] == [2, 5, 5]
    assert layers["conv"]["parameters"] == 2 * 1 * 2 * 2 + 2
    assert layers["fc"]["domain"] == "synapse"
    assert data["parameters"] == 10 + 3 * 8


def test_inspect_table_and_errors(tmp_path):
    table = CliRunner().invoke(main, ["inspect", str(FIXTURE)])
    assert table.exit_code == 0 and "if1" in table.stdout
    broken = tmp_path / "broken.nhir"
    broken.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["inspect", str(broken)])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "broken.nhir" in result.stderr
    assert "Traceback" not in result.output
