"""Discovery by entry point: what is listed, what is refused and why, which method comes first."""

from __future__ import annotations

import pytest

from viewer.plugins import PluginError, get_plugin, plugin_infos, preferred

PLUGIN_MODULE = '''
from dataclasses import dataclass
from viewer.plugins import SegmenterBase, RendererBase

@dataclass
class Config:
    pass

class Seg(SegmenterBase):
    name = "fakeseg"
    description = "a fake"
    Config = Config
    priority = 50
    def train(self, cases, config, progress, *, checkpoint_dir=None, sources=()): ...
    def predict(self, model, volume, progress, *, tta=False): ...
    def save(self, model, path): ...
    def load(self, path, device="cpu"): ...

class Half:  # says it is a renderer, lacks most of one
    kind = "renderer"
    name = "half"

class NotAPlugin:
    kind = "teleporter"

SEG, HALF, ODD = Seg(), Half(), NotAPlugin()
'''


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """A distribution installed the way pip leaves one: a module and a dist-info with entry points."""
    (tmp_path / "fake_lucid_plugins.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "fake_lucid_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-lucid-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[lucid3d.plugins]\nfakeseg = fake_lucid_plugins:SEG\nhalf = fake_lucid_plugins:HALF\n"
        "odd = fake_lucid_plugins:ODD\nnomodule = fake_lucid_missing_module:X\n"
        "unet3d = fake_lucid_plugins:ODD\n")  # claims a built-in's name: the working one wins
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin_infos(refresh=True)
    yield
    monkeypatch.undo()
    plugin_infos(refresh=True)


def test_every_entry_point_is_listed_with_its_reason(fake_dist):
    infos = {i.name: i for i in plugin_infos()}
    assert infos["fakeseg"].available and infos["fakeseg"].distribution == "fake-lucid-plugins"
    assert "lacks" in infos["half"].problem and "fit" in infos["half"].problem and infos["half"].kind == "renderer"
    assert "is not a plugin" in infos["odd"].problem
    assert "No module named 'fake_lucid_missing_module'" in infos["nomodule"].problem
    assert infos["unet3d"].available and infos["unet3d"].distribution == "lucid3d"


@pytest.mark.parametrize("name,kind,message", [
    ("half", None, "the plugin 'half' is unavailable: lacks"),
    ("nomodule", "segmenter", "is unavailable: cannot be loaded"),
    ("nosuch", "segmenter", "no segmenter named 'nosuch'; available: "),
    ("fakeseg", "renderer", "no renderer named 'fakeseg'"),
])
def test_get_plugin_says_why_in_one_line(fake_dist, name, kind, message):
    with pytest.raises(PluginError) as err:
        get_plugin(name, kind)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_priority_picks_the_default(fake_dist):
    assert preferred("segmenter") == "fakeseg"  # priority 50 beats unet3d's 10
    assert preferred("renderer") == "dnr"


def test_builtin_defaults():
    assert preferred("segmenter") == "unet3d" and preferred("renderer") == "dnr"
