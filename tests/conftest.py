"""Shared fixtures: a temporary site directory where tests install plugins by entry point."""

import sys
import textwrap
from pathlib import Path

import pytest

from neurohal import plugins

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "minimal_plugin"


class PluginSite:
    """A directory on sys.path holding distributions with ``neurohal`` entry points."""

    def __init__(self, path: Path):
        self.path = path

    def add(self, dist: str, entry: str, module: str, source: str) -> None:
        """Make ``dist`` importable with entry point ``entry = module`` (as pip would)."""
        (self.path / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.path / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[neurohal]\n{entry} = {module}\n")
        plugins.registry.cache_clear()  # the next lookup rediscovers


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A fresh plugin site (with the example plugin's package importable)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NEUROHAL_PLUGINS", raising=False)
    monkeypatch.delenv("NEUROHAL_DISABLE_PLUGINS", raising=False)
    yield PluginSite(tmp_path)
    sys.modules.pop("neurohal_example", None)
    plugins.registry.cache_clear()  # rediscover lazily, once this site is off sys.path
