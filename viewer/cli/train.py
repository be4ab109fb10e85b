"""``train-segmenter`` and ``segment``: the segmentation plugins from a terminal (a laptop or a GPU
server), with a terminal progress bar; the same plugin calls the window makes."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable

from .common import CtrlC, add_set_option, check_device, config_from_options, number_in, prepare_out_folder, reading, refuse_same_file
from ..model.errors import LoadError

__all__ = ["add_parsers", "HANDLERS", "label_summary", "load_cases"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub) -> None:
    t = sub.add_parser("train-segmenter", help="train a segmenter on image/label pairs")
    t.add_argument("--model", default=None,
                   help="segmenter plugin (default: the preferred one installed, unet3d; `main.py plugins` lists them)")
    t.add_argument("--image", action="append", required=True, metavar="IMG", help="image volume (repeat)")
    t.add_argument("--label", action="append", required=True, metavar="LBL", help="its label volume (repeat, same order)")
    t.add_argument("--out", required=True, metavar="DIR",
                   help="checkpoint folder (model.safetensors + config.json): new or empty")
    t.add_argument("--overwrite", action="store_true", help="replace a checkpoint of the same method in --out")
    t.add_argument("--minutes", type=number_in(float, 0, 100_000),
                   help="wall-clock budget (0 = none); stops cleanly and keeps the best checkpoint")
    t.add_argument("--epochs", type=number_in(int, 1, 1_000_000), help="epochs at most")
    t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    t.add_argument("--val-fraction", type=number_in(float, 0, 1, hi_open=True),
                   help="share of cases held out for validation, in [0, 1)")
    t.add_argument("--patch", type=number_in(int, 16, 256), help="patch edge in voxels (16..256)")
    t.add_argument("--iters-per-epoch", type=number_in(int, 1, 1_000_000))
    t.add_argument("--seed", type=number_in(int, 0, 2**32 - 1))
    add_set_option(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    HANDLERS["train-segmenter"] = _cmd_train

    s = sub.add_parser("segment", help="segment a volume with a trained checkpoint")
    s.add_argument("--checkpoint", required=True, metavar="DIR")
    s.add_argument("--input", required=True, metavar="IMG_OR_DICOM_FOLDER")
    s.add_argument("--output", required=True, metavar="MASK.nii.gz")
    s.add_argument("--uncertainty", metavar="UNC.nii.gz", help="also write the uncertainty map (flip TTA)")
    s.add_argument("--tta", action="store_true", help="flip test-time augmentation even without --uncertainty")
    s.add_argument("--crf", action=argparse.BooleanOptionalAction, default=None,
                   help="3D fully connected CRF after the network, or not (default: as trained; for "
                        "methods whose settings have a crf)")
    s.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    HANDLERS["segment"] = _cmd_segment



def _nifti_out(path: str) -> Path:
    p = Path(path)
    if not (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
        raise LoadError(p, "the output must end in .nii or .nii.gz")
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise LoadError(p, f"the folder {p.parent} does not exist")  # before a long prediction
    return p


def load_cases(images: list[str], labels: list[str]) -> tuple[list, list[dict]]:
    """Image/label pairs -> plugin Cases (+ file hashes); one-line LoadErrors for bad pairs."""

    from ..plugins import load_case
    from ..plugins.checkpoint import sha256_file

    if len(images) != len(labels):
        raise LoadError("--label", f"{len(images)} --image but {len(labels)} --label: give them in pairs")
    cases, sources = [], []
    for img_path, lab_path in zip(images, labels):
        with reading(f"{img_path} (or its label {lab_path})"):
            cases.append(load_case(img_path, lab_path))
        sources.append({"image": str(Path(img_path).resolve()), "image_sha256": sha256_file(img_path),
                        "label": str(Path(lab_path).resolve()), "label_sha256": sha256_file(lab_path)})
    return cases, sources


def _cmd_train(args: argparse.Namespace) -> int:
    from ..jobs.progress import TerminalProgress
    from ..plugins import PluginError, get_plugin, preferred

    try:
        plugin = get_plugin(args.model or preferred("segmenter") or "unet3d", "segmenter")
    except PluginError as exc:
        raise LoadError("--model", str(exc)) from None
    check_device(args.device)
    rank = int(os.environ.get("RANK", "0"))
    cfg = config_from_options(plugin, args, {
        "minutes": ("minutes", "--minutes"), "epochs": ("max_epochs", "--epochs"),
        "val_fraction": ("val_fraction", "--val-fraction"), "patch": ("patch_size", "--patch"),
        "iters_per_epoch": ("iters_per_epoch", "--iters-per-epoch"), "seed": ("seed", "--seed")})
    out = Path(args.out)
    if rank == 0:  # only rank 0 writes; the others would see its first checkpoint appear
        prepare_out_folder(out, inputs=args.image + args.label, what=f"{plugin.name} checkpoint",
                           ours=plugin.owns_checkpoint, overwrite=args.overwrite)
    cases, sources = load_cases(args.image, args.label)
    os.environ["LUCID3D_DEVICE"] = args.device
    progress = TerminalProgress(f"training {plugin.name}", disable=args.quiet or rank != 0)
    with CtrlC(progress):
        try:
            model = plugin.train(cases, cfg, progress, checkpoint_dir=str(out) if rank == 0 else None,
                                 sources=sources)
        finally:
            progress.close()
            from ..plugins.training import finish_distributed

            finish_distributed()
    if rank == 0:
        m = model.metrics
        summary = {k: m.get(k) for k in ("best_val_dice", "best_val_dice_per_label", "best_epoch", "epochs",
                                         "steps", "seconds", "stopped_by", "validation_cases", "ddp") if k in m}
        summary["checkpoint"] = str(out)
        print(json.dumps(summary))
    return 0


def label_summary(labels) -> dict[str, dict[str, Any]]:
    """Per label value: name, voxels, volume in mL (what `segment` prints)."""
    from ..model import voxel_volume_ml

    counts = labels.voxel_counts()
    ml = voxel_volume_ml(labels.affine)
    return {str(lab.value): {"name": lab.name, "voxels": counts.get(lab.value, 0),
                             "volume_ml": counts.get(lab.value, 0) * ml} for lab in labels.table}


def _cmd_segment(args: argparse.Namespace) -> int:
    from .common import load_input
    from ..io import save_nifti
    from ..jobs.progress import TerminalProgress
    from ..model import Volume
    from ..plugins import plugin_for_checkpoint

    out = _nifti_out(args.output)
    unc_out = _nifti_out(args.uncertainty) if args.uncertainty else None
    ckpt = Path(args.checkpoint)
    src = Path(args.input)
    refuse_same_file(out, input=src, uncertainty=unc_out)
    if unc_out is not None:
        refuse_same_file(unc_out, input=src)
    for o in filter(None, (out, unc_out)):
        if (src.is_dir() and o.resolve().is_relative_to(src.resolve())) or o.resolve().is_relative_to(ckpt.resolve()):
            raise LoadError(o, "refusing to write into an input folder")
    check_device(args.device)
    plugin = plugin_for_checkpoint(ckpt, "segmenter")
    settings = {} if args.crf is None else {"crf": bool(args.crf)}
    if settings and "crf" not in getattr(plugin.Config, "__dataclass_fields__", {}):
        raise LoadError("--crf", f"the {plugin.name} segmenter has no such setting")
    model = plugin.load(ckpt, device=args.device)
    volume = load_input(args.input)
    if not isinstance(volume, Volume):
        raise LoadError(args.input, "not a volume")
    problem = plugin.check_volume(model, volume)
    if problem:
        raise LoadError(ckpt / "config.json", f"too fine for this scan: {problem}")
    progress = TerminalProgress("segmenting", disable=args.quiet)
    with CtrlC(progress):
        try:
            try:
                labels, unc = plugin.predict(model, volume, progress, tta=bool(unc_out or args.tta),
                                             **({"settings": settings} if settings else {}))
            except ValueError as exc:
                raise LoadError(ckpt, str(exc)) from None
        finally:
            progress.close()
    if progress.cancelled:
        raise LoadError(args.input, "cancelled; nothing written")
    save_nifti(labels, out, protect=[src, ckpt / "model.safetensors"])
    # the label names and colours beside the mask (ITK-SNAP's format; Slicer and ITK-SNAP read it,
    # and so does Lucid3D when the mask is opened)
    from ..io.labelfiles import sidecar_path, write_itksnap_labels

    write_itksnap_labels(labels.table, sidecar_path(out), protect=[src, out])
    if unc_out is not None and unc is not None:
        save_nifti(unc, unc_out, protect=[src, out])
    print(json.dumps(label_summary(labels)))
    return 0
