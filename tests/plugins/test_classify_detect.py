"""Classification and detection (the ``heatmap3d`` plugins, ``train-classifier``/``classify``/
``train-detector``/``detect``) on synthetic CT crops with lesions (viewer.samples.lesions).

* The plugins are found by discovery as a classifier and a detector, and take exactly the
  contract's parameters.
* A seconds-long training (a fixed number of steps, one thread) on 16 training crops separates
  lesion from no-lesion crops of other patients better than chance (ROC AUC), its saliency
  maximum falls in a lesion on some of them, and its boxes (RAS mm, inside the image) overlap the
  true lesion on some of them. The lesions here are brighter (+80-100 HU) than the benchmark's
  (+25-45 HU): seconds, not minutes, of training.
* The saliency map lies on the input's exact grid (shape, affine), also for a scan stored in
  another voxel order than training's; through ``classify --saliency`` too.
* Labels alone (no boxes in the manifest): the per-class pooled heat maps train and give
  probabilities summing to 1; so does the DenseNet121 (``densenet3d``, labels alone even with
  boxes given), whose Grad-CAM saliency lies on the input's exact grid, in 0..1, and not flat.
* Checkpoints round-trip (the same output after save/load), are owned only by their plugin,
  and a classifier's checkpoint is refused by ``detect``.
* Bad input through the command line: one line ``error: ...``, exit 2, nothing written.
* Positive-biased patches: one drawn on a box always holds lesion voxels; patches smaller than
  the crop land at many places in it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.plugins import one_thread  # noqa: F401  (autouse: one torch thread)
from viewer.cli import main as cli_main
from viewer.jobs.progress import Progress
from viewer.model import Volume
from viewer.model.errors import LoadError
from viewer.plugins import (ClassifierBase, ClassifierPlugin, DetectorBase, DetectorPlugin, ImageCase, get_plugin)
from viewer.samples.lesions import TEST_SEED, lesion_crops, write_lesion_set

CROP, CONTRAST, STEPS = 24, (80.0, 100.0), 800


def _cases(crops, boxes: bool = True) -> list[ImageCase]:
    return [ImageCase(c.volume, c.label, list(c.boxes) if boxes else None, c.volume.name) for c in crops]


@pytest.fixture(scope="module")
def crops():
    return {"train": lesion_crops(16, 0, crop=CROP, contrast=CONTRAST),
            "test": lesion_crops(12, TEST_SEED, crop=CROP, contrast=CONTRAST)}


@pytest.fixture(scope="module")
def detector(crops, tmp_path_factory):
    """The detector, trained for a fixed number of steps into a checkpoint folder."""
    plugin = get_plugin("heatmap3d-detector", "detector")
    folder = tmp_path_factory.mktemp("det") / "ckpt"
    cfg = plugin.Config(minutes=0, max_steps=STEPS, patch_size=CROP, batch_size=2)
    model = plugin.train(_cases(crops["train"]), cfg, Progress(), checkpoint_dir=folder)
    return plugin, model, folder


@pytest.fixture(scope="module")
def classifier(crops, tmp_path_factory):
    plugin = get_plugin("heatmap3d", "classifier")
    folder = tmp_path_factory.mktemp("cls") / "ckpt"
    cfg = plugin.Config(minutes=0, max_steps=STEPS, patch_size=CROP, batch_size=2)
    model = plugin.train(_cases(crops["train"]), cfg, Progress(), checkpoint_dir=folder)
    return plugin, model, folder


@pytest.mark.parametrize("name, kind, protocol, base, methods", [
    ("heatmap3d", "classifier", ClassifierPlugin, ClassifierBase, ("train", "classify", "saliency", "save", "load")),
    ("heatmap3d-detector", "detector", DetectorPlugin, DetectorBase, ("train", "detect", "save", "load")),
    ("densenet3d", "classifier", ClassifierPlugin, ClassifierBase, ("train", "classify", "saliency", "save", "load")),
])
def test_discovered_and_matching_the_contract(name, kind, protocol, base, methods):
    import inspect

    plugin = get_plugin(name, kind)
    assert plugin.kind == kind and isinstance(plugin, base) and isinstance(plugin, protocol)
    for m in methods:
        mine = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(plugin, m)).parameters.values()]
        want = [(p.name, p.kind, p.default) for p in inspect.signature(getattr(protocol, m)).parameters.values()
                if p.name != "self"]
        assert mine == want, m


def _auc(scores, positive) -> float:
    from plugins.heatmap3d.train import roc_auc

    return roc_auc(scores, positive)


def _in_lesion(volume: Volume, ijk, crop) -> bool:
    ras = volume.affine[:3, :3] @ np.asarray(ijk, float) + volume.affine[:3, 3]
    return any(np.linalg.norm(ras - np.asarray(c)) <= r + 1.0 for c, r in zip(crop.centers, crop.radii))


def test_classifier_separates_unseen_crops(classifier, crops):
    plugin, model, _ = classifier
    assert model.mode == "boxes" and model.metrics["steps"] == STEPS
    results = [plugin.classify(model, c.volume) for c in crops["test"]]
    for r in results:
        assert set(r["probabilities"]) == {"lesion", "no lesion"} and abs(sum(r["probabilities"].values()) - 1) < 1e-6
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)
    auc = _auc([r["probabilities"]["lesion"] for r in results], [bool(c.boxes) for c in crops["test"]])
    assert auc > 0.6, auc  # better than chance (0.5) on patients never seen
    pointed = 0
    for c in crops["test"]:
        if c.boxes:
            sal = np.asarray(plugin.saliency(model, c.volume).array)
            pointed += _in_lesion(c.volume, np.unravel_index(np.argmax(sal), sal.shape), c)
    assert pointed >= 2, pointed  # of 6


def test_detector_boxes_are_ras_mm_and_find_lesions(detector, crops):
    from viewer.io.case_manifest import image_extent

    plugin, model, _ = detector
    hits = 0
    for c in crops["test"]:
        found = plugin.detect(model, c.volume, 0.0)
        lo, hi = image_extent(c.volume.shape, c.volume.affine)
        scores = [d["score"] for d in found]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
        for d in found:
            box = np.asarray(d["box"])
            assert np.all(box[:3] < box[3:]) and np.all(box[:3] >= lo - 1e-3) and np.all(box[3:] <= hi + 1e-3)
        assert all(d["score"] >= 0.3 for d in plugin.detect(model, c.volume, 0.3))
        if c.boxes and found:
            top, true = np.asarray(found[0]["box"]), np.asarray(c.boxes[0])
            hits += bool(np.all(np.minimum(top[3:], true[3:]) > np.maximum(top[:3], true[:3])))
    assert hits >= 2, hits  # of 6


def _reoriented(volume: Volume) -> Volume:
    """The same scan stored with its axes permuted (k, i, j) and the first one reversed."""
    arr = np.flip(np.asarray(volume.array), 0)
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, volume.shape[0] - 1
    aff = volume.affine @ flip
    perm = (2, 0, 1)
    sel = np.eye(4)
    sel[:3, :3] = np.eye(3)[:, list(perm)]
    return Volume(np.ascontiguousarray(np.transpose(arr, perm)), aff @ sel, modality="CT")


def test_saliency_on_the_inputs_exact_grid(classifier, crops):
    plugin, model, _ = classifier
    c = crops["test"][0]
    for volume in (c.volume, _reoriented(c.volume)):
        sal = plugin.saliency(model, volume)
        assert sal.shape == volume.shape and np.array_equal(sal.affine, volume.affine)
        assert sal.array.dtype == np.float32 and 0 <= sal.array.min() and sal.array.max() <= 1
    # the same scan in another voxel order: the same map at the same places (RAS)
    a = np.asarray(plugin.saliency(model, c.volume).array)
    b = np.asarray(plugin.saliency(model, _reoriented(c.volume)).array)
    back = np.flip(np.transpose(b, (1, 2, 0)), 0)
    assert np.allclose(a, back, atol=1e-4)


def test_checkpoint_round_trip(classifier, detector, crops):
    cls, cmodel, cfolder = classifier
    det, dmodel, dfolder = detector
    v = crops["test"][0].volume
    a, b = cls.classify(cls.load(cfolder), v), cls.classify(cmodel, v)
    assert a["label"] == b["label"] and a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-6)
    assert det.detect(det.load(dfolder), v, 0.0) == det.detect(dmodel, v, 0.0)
    assert cls.owns_checkpoint(cfolder) and not cls.owns_checkpoint(dfolder) and det.owns_checkpoint(dfolder)
    with pytest.raises(LoadError, match="kind"):
        det.load(cfolder)


def test_labels_alone_train_per_class_maps(crops):
    plugin = get_plugin("heatmap3d", "classifier")
    cfg = plugin.Config(minutes=0, max_steps=10, batch_size=2)
    model = plugin.train(_cases(crops["train"][:6], boxes=False), cfg, Progress())
    assert model.mode == "labels" and model.positive is None
    r = plugin.classify(model, crops["test"][1].volume)
    assert abs(sum(r["probabilities"].values()) - 1) < 1e-6
    sal = plugin.saliency(model, crops["test"][1].volume)
    assert sal.shape == crops["test"][1].volume.shape


def test_densenet_learns_labels_alone_with_grad_cam(crops, tmp_path):
    plugin = get_plugin("densenet3d", "classifier")
    cfg = plugin.Config(minutes=0, max_steps=6, batch_size=2)
    model = plugin.train(_cases(crops["train"][:6]), cfg, Progress(), checkpoint_dir=tmp_path / "dn")
    assert model.mode == "labels" and model.network == "densenet121"
    c = crops["test"][0]
    loaded = plugin.load(tmp_path / "dn")
    assert plugin.classify(loaded, c.volume)["probabilities"] == pytest.approx(
        plugin.classify(model, c.volume)["probabilities"], abs=1e-6)
    for volume in (c.volume, _reoriented(c.volume)):
        sal = plugin.saliency(loaded, volume)
        assert sal.shape == volume.shape and np.array_equal(sal.affine, volume.affine)
        assert 0 <= sal.array.min() < sal.array.max() <= 1  # a map, not one number
    assert plugin.owns_checkpoint(tmp_path / "dn") and not get_plugin("heatmap3d").owns_checkpoint(tmp_path / "dn")


# the command line --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("lesion_files")
    return {"train": write_lesion_set(d / "train", 4, 0, crop=16, contrast=CONTRAST),
            "test": write_lesion_set(d / "test", 2, TEST_SEED, crop=16, contrast=CONTRAST)}


def test_cli_train_classify_detect(files, tmp_path, capsys):
    test_img = files["test"].parent / "crop-50000-lesion.nii.gz"
    ck, dk, sal = tmp_path / "ck", tmp_path / "dk", tmp_path / "sal.nii.gz"
    assert cli_main(["train-classifier", "--cases", str(files["train"]), "--out", str(ck), "--steps", "3",
                     "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "boxes"
    assert cli_main(["classify", "--checkpoint", str(ck), "--input", str(test_img), "--saliency", str(sal)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"label", "probabilities"} and set(out["probabilities"]) == {"lesion", "no lesion"}
    img, s = nib.load(str(test_img)), nib.load(str(sal))
    assert s.shape == img.shape and np.allclose(s.affine, img.affine, atol=1e-6)
    assert cli_main(["train-detector", "--cases", str(files["train"]), "--out", str(dk), "--steps", "3",
                     "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["detect", "--checkpoint", str(dk), "--input", str(test_img), "--min-score", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"boxes"} and all(set(b) == {"box", "score"} and len(b["box"]) == 6 for b in out["boxes"])


def _bad_manifest(files, tmp_path: Path, how: str) -> Path:
    src = files["train"].parent
    d = tmp_path / "bad"
    shutil.copytree(src, d)
    rows = json.loads((d / "cases.json").read_text())
    if how == "missing_file":
        (d / rows[1]["image"]).unlink()
    elif how == "box_outside":
        rows[0]["boxes"] = [[b + 500.0 for b in rows[0]["boxes"][0]]]
    elif how == "one_class":
        rows = [dict(r, label="lesion") for r in rows]
    elif how == "mixed_modality":
        nib.save(nib.Nifti1Image(np.full((16, 16, 16), 200.0, np.float32), np.eye(4)), str(d / "mr.nii.gz"))
        rows[1]["image"] = "mr.nii.gz"
    elif how == "no_boxes":
        rows = [{"image": r["image"], "label": r["label"]} for r in rows]
    (d / "cases.json").write_text(json.dumps(rows))
    return d / "cases.json"


@pytest.mark.parametrize("command, how, fragment", [
    ("train-classifier", "missing_file", "no such file"),
    ("train-classifier", "box_outside", "lies outside the image"),
    ("train-classifier", "one_class", "one class only"),
    ("train-classifier", "mixed_modality", "mixed modality"),
    ("train-detector", "no_boxes", "no 'boxes'"),
    ("train-detector", "missing_manifest", "no such file"),
    ("train-classifier", "bad_model", "no classifier named 'unet3d'"),
    ("train-classifier", "out_not_empty", "holds something other than a heatmap3d checkpoint"),
])
def test_cli_training_refuses_bad_input(files, tmp_path, capsys, command, how, fragment):
    manifest = tmp_path / "nothere.json" if how == "missing_manifest" else \
        files["train"] if how in ("bad_model", "out_not_empty") else _bad_manifest(files, tmp_path, how)
    out = tmp_path / "out"
    extra = ["--model", "unet3d"] if how == "bad_model" else []
    if how == "out_not_empty":
        out.mkdir()
        (out / "notes.txt").write_text("the user's")
    rc = cli_main([command, "--cases", str(manifest), "--out", str(out), "--steps", "2", "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and fragment in err, err
    assert not out.exists() or [p.name for p in out.iterdir()] == (["notes.txt"] if how == "out_not_empty" else [])


@pytest.mark.parametrize("case, fragment", [
    ("detector_checkpoint", "a detector checkpoint"),
    ("not_nifti", "must end in .nii"),
    ("missing_input", "no such file"),
    ("saliency_is_input", "refusing to overwrite"),
])
def test_cli_classify_refuses_bad_input(classifier, detector, files, tmp_path, capsys, case, fragment):
    img = files["test"].parent / "crop-50000-lesion.nii.gz"
    before = img.read_bytes()
    ckpt = detector[2] if case == "detector_checkpoint" else classifier[2]
    sal = {"not_nifti": tmp_path / "sal.png", "saliency_is_input": img}.get(case, tmp_path / "sal.nii.gz")
    src = tmp_path / "nothere.nii.gz" if case == "missing_input" else img
    rc = cli_main(["classify", "--checkpoint", str(ckpt), "--input", str(src), "--saliency", str(sal)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and fragment in err, err
    assert img.read_bytes() == before and not (tmp_path / "sal.nii.gz").exists() and not (tmp_path / "sal.png").exists()


@pytest.mark.parametrize("patch", [16, 24, 32], ids=lambda p: f"patch{p}")
def test_patches_on_a_box_hold_its_lesion_and_others_move(crops, patch):
    """Positive-biased sampling: a patch drawn "on the box" always holds lesion voxels (a tiny
    sphere in a big crop is otherwise rare), and patches smaller than the crop land at many
    places in it (the shifts 24 crops alone lack)."""
    from plugins.heatmap3d.data import ellipsoid_target, normalisation_for, prepare
    from plugins.heatmap3d.train import _patch

    crop = lesion_crops(1, 0, crop=32)[0]
    p = prepare(crop.volume, (1.5, 1.5, 1.5), normalisation_for("CT"))
    p.target = ellipsoid_target(p.image.shape, p.affine, crop.boxes)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        x, y = _patch(p, patch, rng, on_box=True)
        assert x.shape == y.shape == (patch,) * 3 and y.any()
        x, _ = _patch(p, patch, rng, on_box=False)
        seen.add(x.tobytes())  # one patch per origin
    assert len(seen) == 1 if patch == 32 else len(seen) > 20
