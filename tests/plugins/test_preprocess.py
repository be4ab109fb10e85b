"""The segmenters' preprocessing and inference machinery, on small arrays (no training).

* ``to_canonical``: for RAS, LPS, sagittal (permuted axes) and oblique grids the canonical
  array is a view, its voxel axes run towards +R, +A, +S, its affine puts every canonical voxel
  at the world point of the source voxel it came from, and ``undo`` gives the source back.
* ``resample_to``: shapes, the <= 10 % identity rule, exact requested shapes, nearest labels.
* ``Normalisation``: CT clip + dataset z-score, MR per-volume z-score, NaN handling.
* ``segment_array``: the slab path (forced with a tiny ``slab_bytes``) gives the single-pass
  result: exactly for a voxel-wise network, nearly for a small untrained U-Net.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugins._seg.infer import _count_windows, predict_probabilities, segment_array
from plugins._seg.preprocess import Normalisation, fit_normalisation, resample_to, to_canonical
from plugins.unet3d import Config, build_network
from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread)


def _rot(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


def _affine(m3: np.ndarray, origin=(-31.5, 17.25, 42.0)) -> np.ndarray:
    aff = np.eye(4)
    aff[:3, :3] = m3
    aff[:3, 3] = origin
    return aff


# name -> (voxel -> RAS affine, expected perm, expected flip)
GRIDS = {
    "ras": (_affine(np.diag([0.8, 1.1, 2.5])), (0, 1, 2), (False, False, False)),
    "lps": (_affine(np.diag([-0.8, -1.1, 2.5])), (0, 1, 2), (True, True, False)),
    # a sagittal acquisition: i runs posterior, j inferior, k towards the patient's left
    "sagittal": (_affine(np.array([[0, 0, -3.0], [-0.9, 0, 0], [0, -1.2, 0]])), (2, 0, 1), (True, True, True)),
    # oblique: the sagittal grid rotated 20 deg about z, then 10 deg about x
    "oblique": (_affine(_rot("x", 10) @ _rot("z", 20) @ np.array([[0, 0, -3.0], [-0.9, 0, 0], [0, -1.2, 0]])),
                (2, 0, 1), (True, True, True)),
    # LPS in-plane, slices stacked along -S (feet first), rotated by 30 deg about S
    "rotated_axial": (_affine(_rot("z", 30) @ np.diag([-1.0, -1.0, -2.0])), (0, 1, 2), (True, True, True)),
}
SHAPE = (7, 5, 4)


@pytest.mark.parametrize("name", list(GRIDS))
def test_to_canonical_keeps_every_voxel_at_its_world_point(name):
    affine, perm, flip = GRIDS[name]
    src = np.arange(np.prod(SHAPE)).reshape(SHAPE)  # each voxel's value = its flat source index
    out, can_aff, can = to_canonical(src, affine)
    assert can.perm == perm and can.flip == flip and can.shape == SHAPE
    assert out.shape == tuple(SHAPE[a] for a in perm)
    assert np.shares_memory(out, src), "canonical orientation must be a view, not a copy"
    # every canonical voxel c holds source voxel s: both affines put them at the same point
    c_idx = np.indices(out.shape).reshape(3, -1).astype(float)
    s_idx = np.array(np.unravel_index(out.reshape(-1), SHAPE), float)
    world_c = can_aff[:3, :3] @ c_idx + can_aff[:3, 3:4]
    world_s = affine[:3, :3] @ s_idx + affine[:3, 3:4]
    np.testing.assert_allclose(world_c, world_s, atol=1e-9)
    # the canonical axes point towards +R, +A, +S (each column mostly along its own world axis)
    m = can_aff[:3, :3]
    assert np.all(np.diag(m) > 0)
    assert np.all(np.argmax(np.abs(m), axis=0) == [0, 1, 2])
    np.testing.assert_allclose(np.linalg.norm(m, axis=0), np.linalg.norm(affine[:3, :3], axis=0)[list(perm)])
    np.testing.assert_array_equal(can_aff[3], [0, 0, 0, 1])


@pytest.mark.parametrize("name", list(GRIDS))
def test_undo_inverts_apply(name):
    affine, _, _ = GRIDS[name]
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    out, _, can = to_canonical(x, affine)
    np.testing.assert_array_equal(can.apply(x), out)
    back = can.undo(out)
    assert back.shape == SHAPE
    np.testing.assert_array_equal(back, x)
    # trailing axes (classes, channels) ride along unchanged
    stacked = np.stack([out, 2 * out, -out], axis=-1)
    np.testing.assert_array_equal(can.undo(stacked), np.stack([x, 2 * x, -x], axis=-1))


def test_canonical_of_a_canonical_grid_is_the_identity():
    affine = GRIDS["ras"][0]
    x = np.zeros(SHAPE, np.uint8)
    out, can_aff, _ = to_canonical(x, affine)
    assert out.shape == SHAPE
    np.testing.assert_array_equal(can_aff, affine)


@pytest.mark.parametrize("shape, spacing, target, expected", [
    ((40, 30, 20), (1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (20, 15, 10)),
    ((20, 15, 10), (2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (40, 30, 20)),
    ((33, 17, 9), (0.7, 1.3, 5.0), (1.0, 1.0, 2.5), (23, 22, 18)),
])
def test_resample_to_target_spacing_shape(shape, spacing, target, expected):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    out = resample_to(x, spacing, target, order=1)
    assert out.shape == expected
    assert out.dtype == np.float32
    # linear interpolation never leaves the input's range
    assert out.min() >= x.min() - 1e-5 and out.max() <= x.max() + 1e-5


def test_resample_to_is_the_identity_within_ten_percent():
    x = np.random.default_rng(0).standard_normal((12, 10, 8)).astype(np.float32)
    assert resample_to(x, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), order=1) is x
    assert resample_to(x, (1.0, 1.05, 0.95), (1.0, 1.0, 1.0), order=1) is x
    assert resample_to(x, (1.0, 1.0, 1.0), (1.0, 1.0, 1.5), order=1) is not x
    # the exact shape it already has: the input itself
    assert resample_to(x, (1.0, 1.0, 1.0), (3.0, 3.0, 3.0), order=1, shape=x.shape) is x


@pytest.mark.parametrize("shape", [(13, 7, 29), (5, 5, 5), (31, 2, 17)])
def test_resample_to_exact_shape_and_nearest_labels(shape):
    lab = np.zeros((24, 18, 11), np.uint8)
    lab[3:15, 4:12, 2:9] = 3
    lab[16:22, 1:6, 5:11] = 7
    out = resample_to(lab, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), order=0, shape=shape)
    assert out.shape == shape
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 3, 7}, "nearest-neighbour labels never invent values"
    # a round trip to a finer grid and back keeps the labels exactly
    fine = resample_to(lab, (1.0, 1.0, 1.0), (0.5, 0.5, 0.5), order=0)
    assert fine.shape == (48, 36, 22)
    np.testing.assert_array_equal(resample_to(fine, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), order=0, shape=lab.shape), lab)


def test_resample_constant_image_stays_constant():
    x = np.full((10, 9, 8), 42.0, np.float32)
    out = resample_to(x, (1.0, 1.0, 1.0), (0.6, 1.7, 2.2), order=1)
    np.testing.assert_allclose(out, 42.0, rtol=1e-6)


def _ct_like(seed: int = 0):
    rng = np.random.default_rng(seed)
    img = np.full((30, 30, 20), -1000.0, np.float32)
    img[5:25, 5:25, :] = 40 + 10 * rng.standard_normal((20, 20, 20))
    img[10:15, 10:15, 5:10] = 1500  # bone inside the labelled region: clipped by the window
    lab = np.zeros(img.shape, np.uint8)
    lab[8:22, 8:22, 3:17] = 1
    return img, lab


def test_ct_normalisation_clips_to_the_labelled_window_and_z_scores():
    img, lab = _ct_like()
    norm = fit_normalisation([img], [lab], "CT")
    vals = img[lab > 0]
    lo, hi = np.percentile(vals, [0.5, 99.5])
    assert norm.mode == "ct"
    assert norm.clip_low == pytest.approx(lo, rel=1e-5) and norm.clip_high == pytest.approx(hi, rel=1e-5)
    clipped = np.clip(vals, lo, hi)
    assert norm.mean == pytest.approx(clipped.mean(), rel=1e-4)
    assert norm.std == pytest.approx(clipped.std(), rel=1e-4)
    out = norm(img)
    assert out.dtype == np.float32 and out.shape == img.shape
    # labelled voxels come out z-scored; air is clipped to the window's low end
    assert out[lab > 0].mean() == pytest.approx(0.0, abs=1e-3)
    assert out[lab > 0].std() == pytest.approx(1.0, abs=1e-3)
    assert out.min() == pytest.approx((lo - norm.mean) / norm.std, rel=1e-5)
    assert out.max() == pytest.approx((hi - norm.mean) / norm.std, rel=1e-5)
    # the same window applies to every scan (a fixed HU window, not per volume)
    shifted = norm(img + 0.0)
    np.testing.assert_array_equal(out, shifted)
    # and it round-trips through the checkpoint's dict
    assert Normalisation(**norm.to_dict())(img).tobytes() == out.tobytes()


def test_ct_normalisation_ignores_nan_and_inf():
    img, lab = _ct_like()
    norm = fit_normalisation([img], [lab], "ct")
    bad = img.copy()
    bad[0, 0, 0], bad[0, 0, 1], bad[0, 0, 2] = np.nan, np.inf, -np.inf
    out = norm(bad)
    assert np.all(np.isfinite(out))


def test_mr_normalisation_is_per_volume():
    rng = np.random.default_rng(3)
    img = np.zeros((24, 24, 16), np.float32)
    img[4:20, 4:20, 2:14] = 300 + 40 * rng.standard_normal((16, 16, 12))
    norm = fit_normalisation([img], [np.ones(img.shape, np.uint8)], "MR")
    assert norm.mode == "mr"
    out = norm(img)
    fg = img > np.percentile(img[img > 0], 10)
    assert abs(float(out[fg].mean())) < 0.05 and abs(float(out[fg].std()) - 1.0) < 0.05
    # an MR scan at another gain gives (nearly) the same network input
    np.testing.assert_allclose(norm(3.0 * img), out, atol=1e-4)


# ---------------------------------------------------------------- slabs vs single pass

class _Voxelwise(torch.nn.Module):
    """A 1x1x1 network: its output at a voxel depends on that voxel only, so sliding windows
    and slabs must give exactly the single-pass probabilities."""

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Conv3d(1, 8, 1)
        self.b = torch.nn.Conv3d(8, n_classes, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def _smooth_volume(shape=(48, 48, 80), seed=0) -> np.ndarray:
    from scipy import ndimage

    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    x = ndimage.gaussian_filter(x, 2.0)
    return (x - x.mean()) / x.std()


ROI = (32, 32, 32)
N_CLASSES = 3
# per k-slice MONAI buffers of (n_classes x I x J) float32, twice: a slab of 64 slices
SLAB_64 = 64 * N_CLASSES * 48 * 48 * 4 * 2


def _slab_calls(net, image, slab_bytes, overlap=0.25, **kw):
    calls = []
    labels, unc = segment_array(net, image, N_CLASSES, ROI, overlap=overlap, sw_batch_size=4,
                                slab_bytes=slab_bytes, progress=lambda d, t: calls.append((d, t)), **kw)
    return labels, unc, calls


def test_slabs_equal_single_pass_for_a_voxelwise_network():
    image = _smooth_volume()
    net = _Voxelwise(N_CLASSES).eval()
    single, unc1, calls1 = _slab_calls(net, image, 1 << 30, tta=True)
    slabs, unc2, calls2 = _slab_calls(net, image, SLAB_64, tta=True)
    assert single.shape == slabs.shape == image.shape and single.dtype == np.uint8
    assert len(set(np.unique(single))) > 1, "the test network must not be constant"
    np.testing.assert_array_equal(slabs, single)
    assert unc2.shape == image.shape and unc2.dtype == np.float32
    np.testing.assert_allclose(unc2, unc1, rtol=2e-3, atol=2e-3)  # float16 storage in slabs
    # three slabs (k 0-32, 32-64, 64-80 kept, 16 slices of context each side); progress ends at
    # the total number of windows, more than the single pass needs
    n_slab = _count_windows(image.shape, ROI, 0.25, [(0, 48, 0, 32), (16, 80, 32, 64), (48, 80, 64, 80)])
    assert calls2[-1] == (n_slab * 4, n_slab * 4)
    assert calls1[-1][0] == calls1[-1][1] < calls2[-1][1]
    # and the labels are the argmax of MONAI's probabilities over the whole volume
    prob = predict_probabilities(net, torch.from_numpy(image)[None, None], ROI, 0.25, 4)
    np.testing.assert_array_equal(prob[0].argmax(0).numpy(), single)


def test_slabs_equal_single_pass_for_an_untrained_unet():
    """Instance norm makes a U-Net's output depend on the whole window, so the windows must sit
    at the same places: with overlap 0.5 (step 16) every window of every slab is a window of
    the single pass, and each kept core is covered by the same windows: equal labels."""
    image = _smooth_volume(seed=1)
    torch.manual_seed(0)
    net = build_network(1, N_CLASSES, Config(base_channels=4, levels=3, res_units=1)).eval()
    single, _, _ = _slab_calls(net, image, 1 << 30, overlap=0.5)
    slabs, _, calls = _slab_calls(net, image, SLAB_64, overlap=0.5)
    assert len(set(np.unique(single))) > 1
    assert calls[-1][1] > _count_windows(image.shape, ROI, 0.5, [(0, 80, 0, 80)])  # slabs did run
    assert float(np.mean(single == slabs)) > 0.9999  # argmax ties aside
    # a slab shifted by one slice would not pass: the test can see misplaced cores
    assert float(np.mean(single[..., 33:64] == slabs[..., 32:63])) < 0.99


def test_class_balanced_sampling_finds_small_labels_more_often():
    """'classes' sampling centres patches on every label evenly: a tiny label shows up in far
    more patches than with half-foreground/half-background sampling."""
    import numpy as np

    from plugins._seg.data import Prepared, patch_sampler
    from monai.transforms.utils import map_binary_to_indices, map_classes_to_indices

    lab = np.zeros((1, 48, 48, 48), np.uint8)
    lab[0, 5:35, 5:35, 5:35] = 1          # a big organ
    lab[0, 40:43, 40:43, 40:43] = 2       # a tiny one
    img = lab.astype(np.float32)
    fg, bg = map_binary_to_indices(lab > 0)  # the channel-first label, as Prepared holds it
    p = Prepared("x", img, lab, np.asarray(fg), np.asarray(bg),
                 [np.asarray(i) for i in map_classes_to_indices(lab, 3)])
    counts = {}
    for mode in ("posneg", "classes"):
        s = patch_sampler((8, 8, 8), 2, seed=0, n_classes=3, sampling=mode, affine_prob=0.5)
        counts[mode] = sum(int((np.asarray(d["label"]) == 2).any()) for _ in range(60) for d in s(p.sample_input()))
    assert counts["classes"] > 25 and counts["classes"] > 3 * max(counts["posneg"], 1), counts
