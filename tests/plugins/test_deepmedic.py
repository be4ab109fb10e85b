"""DeepMedic through its plugin API and the command line, with real (short) training and no mocks.

* The network's arithmetic: an input of 48 + 3k voxels per axis predicts a block of 3k; other
  sizes are refused with a clear ValueError; the Config refuses blocks that are not multiples of 3.
* Receptive field: one output voxel depends on exactly the 17³ normal-pathway field and the 51³
  low-resolution field of its 3×3×3 group (the gradient's support), so a voxel outside the
  normal field but inside the low-resolution context changes it, and one outside both does not.
* The segmentation machinery's context hook: training windows carry 24 voxels of context around
  the label block the loss sees (aligned, whatever the window), cases are padded so that edge
  voxels are predicted, the padding is never a centre, and half-foreground sampling centres
  windows on foreground.
* Tiled inference equals one network call over the whole (padded) volume, for several block
  sizes, with and without test-time flips.
* A short training on CT phantoms (a few seconds of one core) segments an unseen phantom far
  better than chance (an empty prediction has Dice 0), and its checkpoint loads to the same labels.
* ``main.py train-segmenter --model deepmedic`` -> ``segment`` -> ``stats`` on real NIfTI files.

Measured on the 2-core box (channels 4, fc 16, 18³ blocks, batch 2, lr 1e-2, class-balanced
centres, 120 steps, one thread, ~12 s of CPU): unseen-phantom mean Dice 0.69-0.77 over seeds 0-2,
every organ >= 0.42 (with half-foreground centres 0.48-0.61, the spleen 0-0.37). Thresholds:
mean > 0.5, every organ > 0.25.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from plugins._seg.data import Prepared, patch_sampler, prepare_case
from plugins._seg.preprocess import fit_normalisation
from plugins._seg.train import _batch, dice_scores
from plugins.deepmedic import PLUGIN, Config, DeepMedicPlugin, build_network
from plugins.deepmedic.infer import segment_tiles, tile_blocks
from plugins.deepmedic.network import CONTEXT, DeepMedic, input_size, output_size
from tests.conftest import run_cli
from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread)
from viewer.jobs.progress import Progress
from viewer.model import LabelMap, Volume
from viewer.plugins import Case, SegmenterPlugin, config_help, get_plugin, plugin_for_checkpoint
from viewer.samples.phantom import LABEL_NAMES, ct_phantom

SHAPE, SPACING = (48, 48, 32), (4.0, 4.0, 6.0)  # the phantom's 192 mm field of view, coarse
MIN_MEAN_DICE = 0.5  # measured 0.69-0.77 over seeds 0-2
MIN_ORGAN_DICE = 0.25  # measured >= 0.42


def tiny_net(n_classes: int = 2, seed: int = 0, dtype=torch.float32) -> DeepMedic:
    torch.manual_seed(seed)
    return DeepMedic(1, n_classes, channels=2, fc_channels=4).to(dtype).eval()


# the network's arithmetic -------------------------------------------------------------------------
@pytest.mark.parametrize("size, out", [
    pytest.param((57, 57, 57), (9, 9, 9), id="paper-segment-25-normal-57-context"),
    pytest.param((69, 69, 69), (21, 21, 21), id="default-training-block-21"),
    pytest.param((51, 60, 75), (3, 12, 27), id="anisotropic"),
    pytest.param((93, 51, 54), (45, 3, 6), id="inference-block-45"),
])
def test_output_size_is_the_input_less_48(size, out):
    x = torch.zeros((1, 1, *size))
    with torch.inference_mode():
        y = tiny_net(n_classes=3)(x)
    assert tuple(y.shape) == (1, 3, *out)
    assert tuple(output_size(s) for s in size) == out
    assert tuple(input_size(o) for o in out) == size


@pytest.mark.parametrize("size", [pytest.param(56, id="not-48-plus-3k"), pytest.param(48, id="nothing-to-predict"),
                                  pytest.param(50, id="48-plus-2"), pytest.param(30, id="smaller-than-context")])
def test_inputs_that_predict_no_whole_block_are_refused(size):
    with pytest.raises(ValueError, match="48 \\+ a positive multiple of 3"):
        tiny_net()(torch.zeros((1, 1, 57, 57, size)))


@pytest.mark.parametrize("settings, fragment", [
    pytest.param({"subsample": "3", "patch_size": 20}, "patch_size: .* not a multiple of 3", id="block-not-multiple-of-3"),
    pytest.param({"subsample": "3", "infer_block": 44}, "infer_block: .* not a multiple of 3", id="inference-block-not-multiple-of-3"),
    pytest.param({"subsample": "3", "infer_block": 252, "channels": 64, "sw_batch_size": 8}, "infer_block: .* GB per feature map",
                 id="inference-block-too-large"),
    pytest.param({"patch_size": 15}, "patch_size", id="block-below-range"),
    pytest.param({"sampling": "centre"}, "sampling", id="unknown-sampling"),
    pytest.param({"mirror": "up"}, "mirror", id="unknown-mirror"),
])
def test_config_refuses_what_the_network_cannot_use(settings, fragment):
    Config().validate()  # the defaults are valid
    with pytest.raises(ValueError, match=fragment):
        Config(**settings).validate()


# receptive field ----------------------------------------------------------------------------------
IN = 63  # predicts a 15³ block: five low-resolution groups per axis


def _fields(o: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Per axis, the input ranges output voxel ``o`` reads: the normal pathway's 17 voxels around
    it, and the 51 voxels (17 low-resolution ones) of its 3-voxel group's low-resolution field."""
    j = o // 3
    return (16 + o, 16 + o + 17), (3 * j, 3 * j + 51)


@pytest.mark.parametrize("o", [pytest.param(6, id="first-of-its-group"), pytest.param(7, id="centre-of-its-group"),
                               pytest.param(8, id="last-of-its-group"), pytest.param(0, id="block-corner"),
                               pytest.param(14, id="far-corner")])
def test_one_output_voxel_reads_exactly_its_normal_and_low_resolution_fields(o):
    net = tiny_net(dtype=torch.float64)
    x = torch.randn((1, 1, IN, IN, IN), dtype=torch.float64, requires_grad=True)
    y = net(x)
    (y[0, 1, o, o, o] - y[0, 0, o, o, o]).backward()
    support = (x.grad[0, 0] != 0).numpy()
    (n0, n1), (l0, l1) = _fields(o)
    want = np.zeros_like(support)
    want[n0:n1, n0:n1, n0:n1] = True
    want[l0:l1, l0:l1, l0:l1] = True
    assert int(want.sum()) == 51**3  # the normal field lies inside the low-resolution one
    np.testing.assert_array_equal(support, want)


@pytest.mark.parametrize("where, changes", [
    pytest.param("normal", True, id="inside-the-normal-field"),
    pytest.param("low-only", True, id="outside-the-normal-field-inside-the-low-res-context"),
    pytest.param("low-edge", True, id="last-voxel-of-the-low-res-context"),
    pytest.param("outside-before", False, id="just-before-the-low-res-context"),
    pytest.param("outside-after", False, id="just-after-the-low-res-context"),
])
def test_changing_a_voxel_changes_the_output_only_within_its_context(where, changes):
    o = 7
    (n0, n1), (l0, l1) = _fields(o)
    voxel = {"normal": (n0 + 8,) * 3, "low-only": (l0 + 1, n0 + 8, n0 + 8), "low-edge": (l1 - 1,) * 3,
             "outside-before": (l0 - 1, n0 + 8, n0 + 8), "outside-after": (n0 + 8, l1, n0 + 8)}[where]
    assert all(0 <= v < IN for v in voxel)
    net = tiny_net(dtype=torch.float64)
    x = torch.randn((1, 1, IN, IN, IN), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x2 = x.clone()
    x2[(0, 0, *voxel)] += 100.0
    with torch.inference_mode():
        a, b = net(x)[0, :, o, o, o], net(x2)[0, :, o, o, o]
    # in float64 a voxel outside the field leaves every sum that reaches `o` bit for bit the same;
    # one inside reaches it (weakly from the field's corner: one path of 8 layers per axis)
    assert (not torch.equal(a, b)) == changes, (a - b).abs().max()


# the machinery's context hook ---------------------------------------------------------------------
@pytest.mark.parametrize("context, window", [pytest.param(0, 18, id="unet-like-no-context"),
                                             pytest.param(CONTEXT, 18 + 2 * CONTEXT, id="deepmedic-context-24")])
def test_training_windows_carry_context_around_an_aligned_label_block(context, window):
    # an image that IS its labels (x10, so that the ±10 % intensity augmentation leaves them
    # readable): the label block the loss sees must be the window's centre
    lab = np.zeros((1, 80, 70, 68), np.uint8)
    lab[0, 50:60, 40:52, 30:38] = 1
    lab[0, 10:14, 10:14, 10:14] = 2
    img = lab.astype(np.float32) * 10
    from monai.transforms.utils import map_binary_to_indices

    fg, bg = map_binary_to_indices(lab > 0)
    p = Prepared("x", img, lab, np.asarray(fg), np.asarray(bg))
    sampler = patch_sampler((window,) * 3, 2, seed=0, sampling="posneg", flip_axes=(0,))
    x, y = _batch([p], sampler, np.random.default_rng(0), 12, "cpu", context)
    assert tuple(x.shape) == (12, 1, window, window, window) and tuple(y.shape) == (12, 1, 18, 18, 18)
    c = slice(context, window - context)
    np.testing.assert_array_equal(y.numpy(), np.round(x[:, :, c, c, c].numpy() / 10).astype(np.int64))
    # half-foreground sampling: about half the label blocks are centred on foreground
    with_fg = int((y.flatten(1) > 0).any(1).sum())
    assert with_fg >= 4, with_fg


def test_cases_are_padded_by_the_context_and_the_padding_is_never_a_centre():
    vol, lab = ct_phantom(SHAPE, SPACING, seed=0)
    case = Case(vol, lab, name="p0")
    norm = fit_normalisation([vol.array], [lab.array], vol.modality or "ct")
    window = (18 + 2 * CONTEXT,) * 3
    p = prepare_case(case, SPACING, norm, {v: v for v in LABEL_NAMES}, window, balanced=True, context=CONTEXT)
    n = np.array(SHAPE)
    assert p.image.shape[1:] == tuple(np.maximum(n + 2 * CONTEXT, window))
    inside = np.zeros(p.image.shape[1:], bool)
    inside[CONTEXT:CONTEXT + n[0], CONTEXT:CONTEXT + n[1], CONTEXT:CONTEXT + n[2]] = True
    assert not p.label[0][~inside].any()
    assert np.all(p.image[0][~inside] == p.image[0][inside].min())
    shape = p.image.shape[1:]
    fg = np.unravel_index(p.fg, shape)
    assert np.all(p.label[0][fg] > 0), "foreground indices point at foreground"
    for indices in (p.bg, *p.classes):
        assert inside[np.unravel_index(indices, shape)].all(), "a centre in the padding"
    assert len(p.bg) == int((p.label[0][inside] == 0).sum())


def test_body_mask_holds_the_body_and_its_dark_insides_not_the_air():
    from plugins._seg.data import body_mask

    img = np.full((40, 40, 12), 2.0, np.float32)  # air
    img[8:32, 8:32] = 100.0  # the body
    img[16:24, 16:24] = 20.0  # a dark cavity inside it (ventricles, a lung)
    lab = np.zeros(img.shape, np.uint8)
    lab[2, 2, 2] = 1  # a label outside the body still counts as body
    body = body_mask(img, lab > 0)
    assert body[8:32, 8:32].all() and body[2, 2, 2]
    outside = np.ones(img.shape, bool)
    outside[8:32, 8:32] = False
    outside[2, 2, 2] = False
    assert not body[outside].any()


@pytest.mark.parametrize("background", ["all", "body"])
def test_background_centres_inside_the_body_and_their_share(background):
    """DeepMedic's sampling: background segment centres only inside the body (the paper's ROI
    mask) with ``background="body"``, and half the centres in the background with
    ``background_share=0.5``."""
    from plugins._seg.data import body_mask

    vol, lab = ct_phantom(SHAPE, SPACING, seed=0)
    case = Case(vol, lab, name="p0")
    norm = fit_normalisation([vol.array], [lab.array], vol.modality or "ct")
    window = (18 + 2 * CONTEXT,) * 3
    p = prepare_case(case, SPACING, norm, {v: v for v in LABEL_NAMES}, window, balanced=True, context=CONTEXT,
                     background=background)
    shape = p.image.shape[1:]
    body = body_mask(p.image[0], p.label[0] > 0)
    centres_in_body = body[np.unravel_index(p.classes[0], shape)]
    if background == "body":
        assert centres_in_body.all()
        assert (p.label[0][body] == 0).sum() == len(p.classes[0])
    else:
        assert not centres_in_body.all(), "the phantom's air is background too"
    n_classes = len(p.classes)
    sampler = patch_sampler((1, 1, 1), 1, seed=0, n_classes=n_classes, sampling="classes", flip_axes=(),
                            background_share=0.5)
    centre_labels = [int(sampler(p.sample_input())[0]["label"].ravel()[0]) for _ in range(400)]
    share = np.mean(np.array(centre_labels) == 0)
    assert 0.42 < share < 0.58, share


# tiled inference ----------------------------------------------------------------------------------
def _whole_volume(net: DeepMedic, image: np.ndarray) -> np.ndarray:
    """One network call over the whole volume, padded as the tiles are: argmax labels."""
    out = [-(-n // 3) * 3 for n in image.shape]
    padded = np.full([o + 2 * CONTEXT for o in out], image.min(), np.float32)
    padded[CONTEXT:CONTEXT + image.shape[0], CONTEXT:CONTEXT + image.shape[1], CONTEXT:CONTEXT + image.shape[2]] = image
    with torch.inference_mode():
        logits = net(torch.from_numpy(padded)[None, None])[0]
    return logits.argmax(0)[:image.shape[0], :image.shape[1], :image.shape[2]].numpy()


@pytest.fixture(scope="module")
def smooth_volume() -> np.ndarray:
    from scipy import ndimage

    rng = np.random.default_rng(3)
    v = ndimage.gaussian_filter(rng.normal(size=(40, 35, 29)), 2).astype(np.float32)
    return v / v.std()


def calibrated_net(volume: np.ndarray) -> DeepMedic:
    """An untrained network whose BatchNorm statistics are those of ``volume`` (so that its
    labels vary over the volume: at initialisation they would be one class everywhere)."""
    net = tiny_net(n_classes=3, seed=0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.momentum = None  # the plain average of what it sees
            m.reset_running_stats()
    pad = [(CONTEXT, CONTEXT + 3 - n % 3 if n % 3 else CONTEXT) for n in volume.shape]
    with torch.no_grad():
        net.train()(torch.from_numpy(np.pad(volume, pad))[None, None])
    return net.eval()


@pytest.mark.parametrize("block", [pytest.param(9, id="9-many-tiles"), pytest.param(12, id="12"),
                                   pytest.param(21, id="21-partial-tiles"), pytest.param(300, id="one-tile")])
def test_tiled_inference_equals_one_call_over_the_whole_volume(smooth_volume, block):
    net = calibrated_net(smooth_volume)
    want = _whole_volume(net, smooth_volume)
    assert len(np.unique(want)) == 3, "a test that can fail needs every class somewhere"
    calls = []
    labels, unc = segment_tiles(net, smooth_volume, 3, (9, 9, 9), sw_batch_size=3, block=block,
                                progress=lambda done, total: calls.append((done, total)))
    assert unc is None and labels.dtype == np.uint8 and labels.shape == smooth_volume.shape
    np.testing.assert_array_equal(labels, want)
    n_tiles = int(np.prod([-(-n // b) for n, b in zip(smooth_volume.shape, tile_blocks(smooth_volume.shape, block))]))
    assert calls[-1] == (n_tiles, n_tiles)


def test_tiled_flips_equal_whole_volume_flips(smooth_volume):
    net = calibrated_net(smooth_volume)
    one = segment_tiles(net, smooth_volume, 3, (9, 9, 9), tta=True, flip_axes=(0, 2), block=300)
    many = segment_tiles(net, smooth_volume, 3, (9, 9, 9), tta=True, flip_axes=(0, 2), block=9)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_allclose(one[1], many[1], atol=1e-5)
    assert 0 <= many[1].min() and many[1].max() <= np.log(3) + 1e-5 and many[1].max() > 0


# a third pathway at x5 (subsample="3,5") ------------------------------------------------------------
def test_a_x5_pathway_widens_the_field_to_85_voxels_and_blocks_to_multiples_of_15():
    """With factors (3, 5) the network reads 40 voxels per side (8 layers x 5), predicts blocks
    of multiples of 15, and one output voxel reads exactly the union of its three fields: the
    normal pathway's 17 voxels, its 3-voxel group's 51 and its 5-voxel group's 85."""
    torch.manual_seed(0)
    net = DeepMedic(1, 2, channels=2, fc_channels=4, factors=(3, 5)).to(torch.float64).eval()
    assert (net.context, net.unit) == (40, 15)
    assert input_size(15, (3, 5)) == 95 and output_size(110, (3, 5)) == 30
    with pytest.raises(ValueError, match="80 \\+ a positive multiple of 15"):
        net(torch.zeros((1, 1, 95, 95, 104), dtype=torch.float64))
    x = torch.randn((1, 1, 95, 95, 95), dtype=torch.float64, requires_grad=True)
    o = 7
    y = net(x)
    (y[0, 1, o, o, o] - y[0, 0, o, o, o]).backward()
    support = (x.grad[0, 0] != 0).numpy()
    want = np.zeros_like(support)
    for lo, hi in [(40 - 8 + o, 40 + 9 + o), (40 - 24 + o // 3 * 3, 40 + 27 + o // 3 * 3),
                   (40 - 40 + o // 5 * 5, 40 + 45 + o // 5 * 5)]:
        want[lo:hi, lo:hi, lo:hi] = True
    np.testing.assert_array_equal(support, want)


@pytest.mark.parametrize("settings, fragment", [
    pytest.param({"subsample": "3,5", "patch_size": 27}, "patch_size: .* not a multiple of 15", id="block-27-not-multiple-of-15"),
    pytest.param({"subsample": "3,5", "infer_block": 42}, "infer_block: .* multiple of 15",
                 id="inference-block-not-multiple-of-15"),
    pytest.param({"subsample": "3,x"}, "subsample: must be factors", id="not-numbers"),
    pytest.param({"subsample": "3,3"}, "subsample: one to three distinct", id="repeated"),
    pytest.param({"subsample": "1"}, "subsample: one to three distinct", id="factor-1"),
])
def test_config_refuses_subsampling_the_blocks_cannot_use(settings, fragment):
    Config(subsample="3 + 5", patch_size=30).validate()
    with pytest.raises(ValueError, match=fragment):
        Config(**settings).validate()


def test_tiled_inference_with_a_x5_pathway_equals_one_call(smooth_volume):
    torch.manual_seed(0)
    net = DeepMedic(1, 3, channels=2, fc_channels=4, factors=(3, 5))
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.momentum = None
            m.reset_running_stats()
    out = [-(-n // 15) * 15 for n in smooth_volume.shape]
    padded = np.full([o + 80 for o in out], smooth_volume.min(), np.float32)
    padded[40:40 + smooth_volume.shape[0], 40:40 + smooth_volume.shape[1], 40:40 + smooth_volume.shape[2]] = smooth_volume
    with torch.no_grad():
        net.train()(torch.from_numpy(padded)[None, None])
        want = net.eval()(torch.from_numpy(padded)[None, None])[0].argmax(0)
    want = want[:smooth_volume.shape[0], :smooth_volume.shape[1], :smooth_volume.shape[2]].numpy()
    assert len(np.unique(want)) >= 2, "a test that can fail needs more than one class"
    assert tile_blocks(smooth_volume.shape, 20, 15) == [15, 15, 15]
    labels, _ = segment_tiles(net, smooth_volume, 3, (15, 15, 15), block=20)
    np.testing.assert_array_equal(labels, want)


# training, checkpoint, prediction -----------------------------------------------------------------
def test_plugin_is_discovered_documented_and_light():
    import subprocess
    import sys

    assert get_plugin("deepmedic", "segmenter") is PLUGIN
    assert isinstance(PLUGIN, DeepMedicPlugin) and isinstance(PLUGIN, SegmenterPlugin)
    helps = config_help(PLUGIN.Config)
    assert helps and all(helps.values()), "every Config field needs a help text for the settings form"
    r = subprocess.run([sys.executable, "-c", "import sys, plugins.deepmedic; print('torch' in sys.modules)"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert r.stdout.strip() == "False", r.stderr


def test_short_training_beats_chance_and_its_checkpoint_predicts_the_same(tmp_path):
    cases = [Case(*ct_phantom(SHAPE, SPACING, seed=s), name=f"phantom{s}") for s in (0, 1)]
    cfg = Config(subsample="3", patch_size=18, channels=4, fc_channels=16, batch_size=2, learning_rate=1e-2, iters_per_epoch=10,
                 max_epochs=12, val_every=1000, minutes=0, val_fraction=0, tta=False, seed=0)
    model = PLUGIN.train(cases, cfg, Progress(), checkpoint_dir=tmp_path)
    assert model.metrics["steps"] == 120 and model.metrics["stopped_by"] == "epochs"
    image, truth = ct_phantom(SHAPE, SPACING, seed=99)  # a phantom no training step has seen
    labels, unc = PLUGIN.predict(model, image, Progress(), tta=False)
    assert unc is None and isinstance(labels, LabelMap) and labels.shape == image.shape
    np.testing.assert_array_equal(labels.affine, image.affine)
    assert {lab.value: lab.name for lab in labels.table} == LABEL_NAMES
    dice = dice_scores(np.asarray(labels.array), np.asarray(truth.array), 5)
    assert dice_scores(np.zeros(SHAPE, np.uint8), np.asarray(truth.array), 5) == [0.0] * 4  # chance
    print(f"unseen-phantom Dice {dict(zip(LABEL_NAMES.values(), np.round(dice, 3)))}, mean {np.mean(dice):.3f}")
    assert float(np.mean(dice)) > MIN_MEAN_DICE, dice
    assert min(dice) > MIN_ORGAN_DICE, dice

    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert PLUGIN.owns_checkpoint(tmp_path) and not get_plugin("unet3d", "segmenter").owns_checkpoint(tmp_path)
    assert plugin_for_checkpoint(tmp_path, "segmenter") is PLUGIN
    loaded = PLUGIN.load(tmp_path)
    assert loaded.plugin == "deepmedic" and tuple(loaded.patch) == (18, 18, 18)
    again, _ = PLUGIN.predict(loaded, image, Progress(), tta=False)
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(labels.array))
    # a checkpoint from before `subsample` existed is the paper's two pathways, not today's default
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored["config"]["small_structures"] in ("on", "off")  # "auto" was decided from the labels
    assert "batch_dice" not in stored["config"]
    del stored["config"]["subsample"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    old = PLUGIN.load(tmp_path)
    assert old.net.factors == (3,) and Config().subsample == "3,5"
    again, _ = PLUGIN.predict(old, image, Progress(), tta=False, settings={"crf": False})
    np.testing.assert_array_equal(np.asarray(again.array), np.asarray(labels.array))
    # flip TTA (left-right only: the phantom's organs are lateralized, so none) and its uncertainty
    _, unc = PLUGIN.predict(loaded, image, Progress(), tta=True)
    assert isinstance(unc, Volume) and unc.shape == image.shape
    u = np.asarray(unc.array)
    assert np.all(np.isfinite(u)) and u.min() >= 0 and u.max() <= np.log(5) + 1e-3


def _save(array, affine, path: Path) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array), affine), str(path))
    return path


def test_cli_train_segment_stats_round_trip(tmp_path):
    files = []
    for s in (0, 1):
        vol, lab = ct_phantom(SHAPE, SPACING, seed=s)
        files += [_save(vol.array, vol.affine, tmp_path / f"ct{s}.nii.gz"),
                  _save(lab.array, lab.affine, tmp_path / f"ct{s}_seg.nii.gz")]
    ckpt = tmp_path / "dm"
    r = run_cli("train-segmenter", "--model", "deepmedic", "--image", files[0], "--label", files[1], "--image",
                files[2], "--label", files[3], "--out", ckpt, "--minutes", 0.1, "--patch", 18, "--set", "subsample=3",
                "--iters-per-epoch", 3, "--quiet", timeout=240)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["steps"] > 0 and np.isfinite(summary["best_val_dice"]) and summary["validation_cases"]
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["plugin"] == "deepmedic" and cfg["patch"] == [18, 18, 18] and cfg["config"]["patch_size"] == 18
    assert cfg["config"]["subsample"] == "3"  # --set reached the Config

    vol, truth = ct_phantom((40, 40, 24), (4.8, 4.8, 8.0), seed=5)  # unseen, on another grid
    src = _save(vol.array, vol.affine, tmp_path / "new.nii.gz")
    ref = _save(truth.array, truth.affine, tmp_path / "ref.nii.gz")
    mask = tmp_path / "mask.nii.gz"
    r = run_cli("segment", "--checkpoint", ckpt, "--input", src, "--output", mask, "--quiet")
    assert r.returncode == 0, r.stderr
    m = nib.load(str(mask))
    assert m.shape == (40, 40, 24)
    np.testing.assert_allclose(m.affine, nib.load(str(src)).affine, atol=1e-6, rtol=0)
    r = run_cli("stats", "--mask", mask, "--reference", ref)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert set(stats) <= {str(v) for v in LABEL_NAMES} and all("dice" in row for row in stats.values())


# wider low-resolution pathways (low_channels) -------------------------------------------------------
def test_low_channels_widen_only_the_low_resolution_pathways_and_count_in_the_memory_check():
    net = build_network(1, 3, Config(channels=4, low_channels=12))
    first = lambda pathway: pathway.convs[0].out_channels  # noqa: E731
    assert first(net.normal) == 4 and first(net.low) == 12 and [first(p) for p in net.wider] == [12]
    assert net.fc1[-1].in_channels == net.normal.convs[-1].out_channels + 2 * net.low.convs[-1].out_channels
    x = torch.zeros((1, 1, 110, 110, 110))
    assert net.eval()(x).shape == build_network(1, 3, Config(channels=4)).eval()(x).shape == (1, 3, 30, 30, 30)
    big = dict(subsample="3", infer_block=252, channels=1, fc_channels=2, sw_batch_size=1)
    Config(**big).validate()  # narrow everywhere: within the budget
    with pytest.raises(ValueError, match="infer_block: .* GB per feature map"):
        Config(**big, low_channels=128).validate()
    with pytest.raises(ValueError, match="low_channels"):
        Config(low_channels=-1).validate()


# small structures: wider low-resolution pathways and the batch's Dice, decided from the labels ----
def _labels_case(voxels_per_label: dict[int, int], spacing=(2.0, 2.0, 2.5)) -> Case:
    arr = np.zeros((40, 40, 40), np.int16)
    flat = arr.reshape(-1)
    start = 0
    for value, n in voxels_per_label.items():
        flat[start:start + n] = value
        start += n
    affine = np.diag([*spacing, 1.0])
    return Case(Volume(arr.astype(np.float32), affine), LabelMap(arr, affine), name="c")


@pytest.mark.parametrize("labels, smallest_ml, decided", [
    pytest.param({1: 1000, 2: 2000}, 10.0, "on", id="10-mL-organ"),          # 1000 voxels x 10 mm^3
    pytest.param({1: 5000, 2: 1600}, 16.0, "off", id="16-mL-smallest"),
    pytest.param({1: 1499}, 14.99, "on", id="just-under-15-mL"),
    pytest.param({1: 40 * 40 * 40}, 640.0, "off", id="one-big-label"),
])
def test_auto_small_structures_follow_the_smallest_label(labels, smallest_ml, decided):
    from plugins.deepmedic import label_volumes_ml, low_width, resolve_small_structures

    cases = [_labels_case(labels)]
    assert min(label_volumes_ml(cases).values()) == pytest.approx(smallest_ml)
    cfg = resolve_small_structures(Config(channels=6), cases)
    assert cfg.small_structures == decided and cfg.batch_dice == (decided == "on")
    assert low_width(cfg) == (12 if decided == "on" else 6)
    first = build_network(1, 3, cfg).low.convs[0].out_channels
    assert first == low_width(cfg)
    # what a user set is kept: an explicit mode, and an explicit width over the mode's
    assert resolve_small_structures(Config(small_structures="off"), cases).small_structures == "off"
    assert low_width(resolve_small_structures(Config(channels=6, low_channels=9), cases)) == 9


def test_the_smallest_label_over_cases_decides_and_a_checkpoint_from_before_is_off():
    from plugins.deepmedic import label_volumes_ml

    vols = label_volumes_ml([_labels_case({1: 3000, 2: 3000}), _labels_case({1: 1000, 2: 4000})])
    assert vols == {1: pytest.approx(10.0), 2: pytest.approx(30.0)}
    assert Config.LEGACY["small_structures"] == "off"  # stored configs without the field: as trained then
    with pytest.raises(ValueError, match="small_structures"):
        Config(small_structures="maybe").validate()
