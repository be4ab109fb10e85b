"""The 3D view's volume mappers: the CPU ray caster (software OpenGL) draws what the GPU one
draws, its slow set-up runs in a worker without holding the GIL, and the choice follows the
GL renderer (or LUCID3D_VOLUME_MAPPER)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.render.test_volume_proxy import bone_block_scene
from viewer.compute import nogil
from viewer.render.offscreen import render_scene
from viewer.render.view3d import volume_image
from viewer.render.volume_mapping import guess_software, is_software_renderer, mapper_kind, prepare_volume


@pytest.mark.parametrize("text,software", [
    ("llvmpipe (LLVM 15.0.6, 256 bits)", True),
    ("Mesa softpipe", True),
    ("SwiftShader Device (Subzero)", True),
    ("NVIDIA H200/PCIe/SSE2", False),
    ("AMD Radeon RX 7900 XTX (radeonsi, navi31, LLVM 17.0.6, DRM 3.54)", False),
    ("Mesa Intel(R) UHD Graphics 620 (KBL GT2)", False),
], ids=["llvmpipe", "softpipe", "swiftshader", "nvidia", "radeonsi-mentions-llvm", "intel"])
def test_software_renderers_are_told_from_gpus(text, software):
    assert is_software_renderer(text) is software


@pytest.mark.parametrize("env,software,kind", [
    ("", True, "cpu"), ("", False, "gpu"),
    ("gpu", True, "gpu"), ("cpu", False, "cpu"), ("bogus", True, "cpu"),
])
def test_mapper_choice(monkeypatch, env, software, kind):
    monkeypatch.setenv("LUCID3D_VOLUME_MAPPER", env)
    assert mapper_kind(software) == kind


def test_before_the_first_frame_the_device_nodes_decide(monkeypatch):
    """Not known yet (a scan opened before the 3D view's first frame): no GPU device node on
    Linux means the software rasterizer, as on this machine."""
    monkeypatch.delenv("LUCID3D_VOLUME_MAPPER", raising=False)
    gpu_node = any(Path(p).exists() for p in ("/dev/dri", "/dev/nvidia0"))
    assert guess_software() is (sys.platform.startswith("linux") and not gpu_node)
    assert mapper_kind(None) == ("cpu" if guess_software() else "gpu")


def test_cpu_ray_caster_draws_what_the_gpu_one_draws(monkeypatch):
    masks = {}
    for kind in ("gpu", "cpu"):
        monkeypatch.setenv("LUCID3D_VOLUME_MAPPER", kind)
        img = render_scene(bone_block_scene(), "3d", (160, 160)).astype(int)
        masks[kind] = np.abs(img - img[2, 2]).sum(-1) > 60
    assert masks["gpu"].mean() > 0.02 and masks["cpu"].mean() > 0.02
    overlap = (masks["gpu"] & masks["cpu"]).sum() / (masks["gpu"] | masks["cpu"]).sum()
    assert overlap > 0.85, overlap


def test_cpu_set_up_runs_without_the_gil():
    """While the worker computes gradients, the main thread keeps running: its longest pause is
    a small part of the call (holding the GIL, it would be the whole call)."""
    rng = np.random.default_rng(0)
    arr = np.asfortranarray(rng.integers(-1000, 1000, (192, 192, 160)).astype(np.int16))
    image = volume_image(arr)
    out: dict = {}

    def work():
        t = time.perf_counter()
        out["vol"] = prepare_volume(image, "cpu")
        out["seconds"] = time.perf_counter() - t

    ticks = []
    th = threading.Thread(target=work)
    th.start()
    while th.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.002)
    th.join()
    assert out["vol"].GetMapper().IsA("vtkFixedPointVolumeRayCastMapper")
    assert out["seconds"] > 0.15, "too small to tell"
    assert np.diff(ticks).max() < 0.5 * out["seconds"], (np.diff(ticks).max(), out["seconds"])


def test_gil_free_call_falls_back_when_the_symbol_is_missing():
    called = []
    assert nogil.call_without_gil(None, (object(),), lambda: called.append(1)) is False
    assert called == [1]
    assert nogil.address(object()) is None
