"""Big scans in the 3D view: the volume is read (and, above the proxy budget, downsampled) in a
worker; the proxy lands where the full-resolution volume does, and the full resolution replaces
it when it fits in memory."""

from __future__ import annotations

import numpy as np
import pytest

import viewer.render.volume_mapping as v3d
from viewer.model import ImageLayer, Scene, Volume
from viewer.render.offscreen import render_scene
from viewer.render import view3d
from viewer.render.view3d import View3D, volume_proxy
from viewer.render.volume_mapping import full_resolution_fits


@pytest.mark.parametrize("shape,budget,factor", [
    ((64, 64, 64), 1_000_000, 1),
    ((64, 64, 64), 100_000, 2),       # 32³ = 32768 fits
    ((512, 512, 1000), 24_000_000, 3),  # the CT: 171×171×334 = 9.8 M voxels
    ((100, 10, 10), 999, 3),         # 50×5×5 = 1250 does not fit; 34×4×4 does
], ids=["fits", "halved", "512x512x1000", "uneven"])
def test_proxy_factor_is_the_smallest_that_fits(shape, budget, factor):
    arr = np.lib.stride_tricks.as_strided(np.zeros(1, np.int16), shape=shape, strides=(0, 0, 0))
    if np.prod(shape) <= 1_000_000:
        arr = np.zeros(shape, np.int16, order="F")
        proxy, f = volume_proxy(arr, budget)
        assert proxy.shape == tuple(-(-n // f) for n in shape) and proxy.flags.f_contiguous
    else:
        f = 1
        while np.prod([-(-n // f) for n in shape]) > budget:
            f += 1
    assert f == factor


def test_memory_mapped_volume_is_read_in_the_worker(tmp_path):
    path = tmp_path / "v.dat"
    mm = np.memmap(path, dtype=np.int16, mode="w+", shape=(20, 20, 20), order="F")
    mm[:] = 7
    proxy, f = volume_proxy(mm)
    assert f == 1 and not isinstance(proxy, np.memmap) and proxy.sum() == 7 * 8000


def bone_block_scene() -> Scene:
    """A 96x96x80 CT of air with a bone block off centre, shown as a bone rendering in 3D."""
    arr = np.full((96, 96, 80), -1000, np.int16, order="F")
    arr[30:70, 20:50, 25:60] = 1500
    scene = Scene()
    layer = ImageLayer(Volume(arr, np.diag([1.5, 1.5, 2.0, 1.0]), modality="CT"))
    layer.render_mode = "ct_bone"
    scene.add(layer)
    return scene


def test_proxy_renders_where_the_full_volume_does(monkeypatch):
    full = render_scene(bone_block_scene(), "3d", (160, 160)).astype(int)
    monkeypatch.setattr(v3d, "PROXY_VOXELS", 96 * 96 * 80 // 7)  # forces f = 2
    monkeypatch.setattr(view3d, "full_resolution_fits", lambda *a: False)  # the proxy stays
    proxy = render_scene(bone_block_scene(), "3d", (160, 160)).astype(int)
    bg = full[2, 2]
    m_full = np.abs(full - bg).sum(-1) > 60
    m_proxy = np.abs(proxy - bg).sum(-1) > 60
    assert m_full.mean() > 0.02
    # the same silhouette, but for a voxel's worth of border
    overlap = (m_full & m_proxy).sum() / max((m_full | m_proxy).sum(), 1)
    assert overlap > 0.85, overlap


@pytest.mark.parametrize("shape,dtype,kind,available,fits", [
    ((512, 512, 1000), np.int16, "cpu", 24 << 30, True),    # 1.3 GB of 24 GiB
    ((512, 512, 1000), np.int16, "cpu", 2 << 30, False),    # not in 40 % of 2 GiB
    ((512, 512, 1000), np.int16, "gpu", 2 << 30, True),     # no gradients kept on the CPU: 0.5 GB
    ((512, 512, 1000), np.float64, "cpu", 4 << 30, False),  # made float32: 262 M x 7 B = 1.8 GB
    ((512, 512, 1000), np.float64, "cpu", 5 << 30, True),
], ids=["ct-24g", "ct-2g", "ct-2g-gpu", "f64-4g", "f64-5g"])
def test_full_resolution_only_when_it_fits_in_memory(shape, dtype, kind, available, fits):
    arr = np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape, strides=(0, 0, 0))
    assert full_resolution_fits(arr, kind, available) is fits


def _volumes(view: View3D, layer) -> list:
    return [p for p in view.props[id(layer)] if p.IsA("vtkVolume")]


def _deferred_view(layer) -> tuple:
    """(view, its renderer, its jobs): a 3D view holding ``layer`` whose worker jobs wait as
    (work, done) pairs until the test runs them; the first is the proxy's."""
    import vtk

    jobs: list = []
    renderer = vtk.vtkRenderer()
    view = View3D(renderer, Scene(), run_async=lambda work, done: jobs.append((work, done)))
    view.scene.add(layer)
    return view, renderer, jobs


def _run_next(jobs: list) -> None:
    work, done = jobs.pop(0)
    done(work())


@pytest.mark.parametrize("fits", [True, False], ids=["fits", "too-big"])
def test_the_full_resolution_replaces_the_proxy(monkeypatch, fits):
    """Proxy first, then (in a second worker job) the whole scan in its place: one volume in
    the view either way, drawn where the full volume is."""
    import vtk

    monkeypatch.setattr(v3d, "PROXY_VOXELS", 96 * 96 * 80 // 7)  # forces f = 2
    monkeypatch.setattr(view3d, "full_resolution_fits", lambda *a: fits)
    layer = bone_block_scene()[0]
    view, renderer, jobs = _deferred_view(layer)
    _run_next(jobs)  # the proxy
    assert [v._proxy_factor for v in _volumes(view, layer)] == [2]
    if not fits:
        assert not jobs
        return
    work, done = jobs.pop(0)
    layer.render_mode = "mip"  # restyled while the full resolution was being made
    done(work())
    vols = _volumes(view, layer)
    assert [v._proxy_factor for v in vols] == [1] and renderer.GetVolumes().GetNumberOfItems() == 1
    assert vols[0].GetMapper().GetInput().GetDimensions() == (96, 96, 80)
    assert vols[0].GetMapper().GetBlendMode() == vtk.vtkVolumeMapper.MAXIMUM_INTENSITY_BLEND
    layer.visible = False
    assert not vols[0].GetVisibility()


def test_a_layer_removed_and_added_again_ignores_its_old_full_resolution_job(monkeypatch):
    """The full-resolution job of the first visit lands after the layer came back: it is dropped
    (the new visit's own jobs build its volume), not swapped in against a proxy it never made."""
    monkeypatch.setattr(v3d, "PROXY_VOXELS", 96 * 96 * 80 // 7)
    monkeypatch.setattr(view3d, "full_resolution_fits", lambda *a: True)
    layer = bone_block_scene()[0]
    view, renderer, jobs = _deferred_view(layer)
    _run_next(jobs)  # the proxy; the full-resolution job is queued
    stale = jobs.pop(0)
    view.scene.remove(layer)
    assert stale[0]() is None  # removed before it started: nothing is built
    view.scene.add(layer)
    stale[1](None)
    _run_next(jobs)  # the second visit's proxy
    stale[1](v3d.volume_for(layer.data.array, "cpu", max_voxels=layer.data.array.size + 1))  # had run: dropped
    assert [v._proxy_factor for v in _volumes(view, layer)] == [2]
    _run_next(jobs)
    assert [v._proxy_factor for v in _volumes(view, layer)] == [1]
    assert renderer.GetVolumes().GetNumberOfItems() == 1


def test_new_voxels_rebuild_the_volume_and_older_jobs_do_nothing():
    """A 4D layer's frame change (new voxels, ``events.data``) rebuilds its 3D volume; of the jobs
    a dragged frame slider queues, only the newest runs."""
    from vtk.util import numpy_support

    layer = bone_block_scene()[0]
    view, renderer, jobs = _deferred_view(layer)
    _run_next(jobs)
    first = _volumes(view, layer)[0]

    def frame(value: int) -> None:
        layer.data.array = np.full(layer.data.shape, value, np.int16, order="F")
        layer.events.data.emit()

    frame(100)
    frame(700)  # before the first frame's job ran
    older, newest = jobs.pop(0), jobs.pop(0)
    assert older[0]() is None  # stale: never built
    older[1](None)
    assert _volumes(view, layer) == [first]  # the old frame stays on screen meanwhile
    newest[1](newest[0]())
    (vol,) = _volumes(view, layer)
    assert vol is not first and renderer.GetVolumes().GetNumberOfItems() == 1
    values = numpy_support.vtk_to_numpy(vol.GetMapper().GetInput().GetPointData().GetScalars())
    assert values.min() == values.max() == 700
