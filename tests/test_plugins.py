"""Plugin discovery through real entry points: broken, duplicate, allow/block lists, third party.

Each test writes distributions (a ``*.dist-info`` with ``entry_points.txt``) into a temporary
directory on ``sys.path``: the same mechanism pip-installed plugins use.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neurohal
from neurohal import plugins
from neurohal.errors import PluginError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minimal_plugin"

GOOD = """
from neurohal.hookspecs import hookimpl
from neurohal_example.device import NumpyDevice

class Renamed(NumpyDevice):
    name = "{device}"

@hookimpl
def neurohal_register_devices(register):
    register(Renamed())
"""


def test_third_party_plugin_is_listed_compiled_and_run(plugin_site):
    plugin_site.add(
        "neurohal-example-device",
        "example",
        "example_ep",
        "from neurohal_example.plugin import neurohal_register_devices\n",
    )
    plugins.refresh()
    device = neurohal.device("example_numpy")
    assert plugins.registry().origins["example_numpy"].distribution == "neurohal-example-device"
    from neurohal.testing import conformance_cases

    case = conformance_cases("spiking")[0]
    result = device.run(device.compile(case.graph), case.inputs, case.timesteps)
    expected = neurohal.reference.run(case.graph, case.inputs, case.timesteps)
    np.testing.assert_array_equal(result.output(), expected.outputs["out"])


def test_broken_import_and_duplicate_name_are_reported_not_fatal(plugin_site):
    plugin_site.add("good-plugin", "good", "good_ep", GOOD.format(device="twin"))
    plugin_site.add("twin-plugin", "twin", "twin_ep", GOOD.format(device="twin"))
    plugin_site.add("broken-plugin", "broken", "broken_ep", "raise RuntimeError('boom')")
    plugin_site.add(
        "bad-hook",
        "badhook",
        "badhook_ep",
        """
        from neurohal.hookspecs import hookimpl
        @hookimpl
        def neurohal_register_devices(register):
            raise ValueError("cannot register")
    """,
    )
    reg = plugins.refresh()
    assert "twin" in reg.devices
    errors = {b.name: b.error for b in reg.broken}
    assert "boom" in errors["broken"]
    assert "cannot register" in errors["badhook"]
    assert "duplicate device name 'twin'" in errors["twin"]
    assert "good" not in errors


def test_allow_and_block_lists(plugin_site, monkeypatch):
    plugin_site.add("a-plugin", "pa", "pa_ep", GOOD.format(device="dev_a"))
    plugin_site.add("b-plugin", "pb", "pb_ep", GOOD.format(device="dev_b"))
    monkeypatch.setenv("NEUROHAL_PLUGINS", "pa")
    assert set(plugins.refresh().devices) == {"dev_a"}
    monkeypatch.delenv("NEUROHAL_PLUGINS")
    monkeypatch.setenv("NEUROHAL_DISABLE_PLUGINS", "pa, pb")
    assert not {"dev_a", "dev_b"} & set(plugins.refresh().devices)


def test_unknown_device_lists_known_ones(plugin_site):
    plugin_site.add("a-plugin", "pa", "pa_ep", GOOD.format(device="dev_a"))
    plugins.refresh()
    with pytest.raises(PluginError, match="no device named 'nope'; known devices: .*dev_a"):
        neurohal.device("nope")


def test_cli_devices_survives_broken_plugins(plugin_site):
    plugin_site.add("broken-plugin", "broken", "broken_ep", "import not_a_module\n")
    plugin_site.add(
        "neurohal-example-device",
        "example",
        "example_ep",
        "from neurohal_example.plugin import neurohal_register_devices\n",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site.path), str(EXAMPLE)])}
    proc = subprocess.run(
        [sys.executable, "-m", "neurohal.cli", "devices", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    listing = json.loads(proc.stdout)
    names = {d["device"] for d in listing["devices"]}
    assert "example_numpy" in names
    assert any(
        b["plugin"] == "broken" and "not_a_module" in b["error"] for b in listing["broken_plugins"]
    )
    example = next(d for d in listing["devices"] if d["device"] == "example_numpy")
    assert example["quantities"]["latency"] == "measured"
    assert example["quantities"]["energy"] == "unavailable"
