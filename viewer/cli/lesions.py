"""``train-classifier``, ``classify``, ``train-detector`` and ``detect``: the classification and
detection plugins from a terminal, trained on a ``cases.json`` manifest
(:mod:`viewer.io.case_manifest`)::

    main.py train-classifier --cases cases.json --out DIR [--model NAME] [--minutes M] [--device cpu|cuda]
    main.py classify --checkpoint DIR --input IMG_OR_DICOM_FOLDER [--saliency SAL.nii.gz]
        {"label": "lesion", "probabilities": {"lesion": 0.93, "no lesion": 0.07}}
    main.py train-detector --cases cases.json --out DIR [--model NAME] [--minutes M] [--device cpu|cuda]
    main.py detect --checkpoint DIR --input IMG [--min-score S]
        {"boxes": [{"box": [r0, a0, s0, r1, a1, s1], "score": 0.91}]}

Every input is checked before anything is written; checkpoints are written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Callable

from ..model.errors import LoadError
from .common import CtrlC, add_set_option, check_device, config_from_options, number_in, prepare_out_folder, refuse_same_file

__all__ = ["add_parsers", "HANDLERS", "load_image_cases"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}
_DEFAULT = {"classifier": "heatmap3d", "detector": "heatmap3d-detector"}


def add_parsers(sub) -> None:
    for kind in ("classifier", "detector"):
        t = sub.add_parser(f"train-{kind}", help=f"train a {kind} on a cases.json manifest")
        t.add_argument("--cases", required=True, metavar="cases.json",
                       help='JSON list of {"image": path relative to it, "label": class, "boxes": [[r0,a0,s0,r1,a1,s1], ...]}')
        t.add_argument("--out", required=True, metavar="DIR", help="checkpoint folder: new or empty")
        t.add_argument("--model", default=None, help=f"{kind} plugin (default: the preferred one installed; "
                                                     "`main.py plugins` lists them)")
        t.add_argument("--overwrite", action="store_true", help="replace a checkpoint of the same method in --out")
        t.add_argument("--minutes", type=number_in(float, 0, 100_000),
                       help="wall-clock budget (0 = none); stops cleanly and keeps the checkpoint")
        t.add_argument("--steps", type=number_in(int, 1, 10_000_000), help="training steps at most")
        t.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
        t.add_argument("--seed", type=number_in(int, 0, 2**32 - 1))
        add_set_option(t)
        t.add_argument("--quiet", action="store_true", help="no progress bar")
        HANDLERS[f"train-{kind}"] = _train_handler(kind)

    c = sub.add_parser("classify", help="classify a volume with a trained classifier checkpoint")
    c.add_argument("--checkpoint", required=True, metavar="DIR")
    c.add_argument("--input", required=True, metavar="IMG_OR_DICOM_FOLDER")
    c.add_argument("--saliency", metavar="SAL.nii.gz", help="also write where the decision comes from, on the input's grid")
    c.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    HANDLERS["classify"] = _cmd_classify

    d = sub.add_parser("detect", help="find boxes in a volume with a trained detector checkpoint")
    d.add_argument("--checkpoint", required=True, metavar="DIR")
    d.add_argument("--input", required=True, metavar="IMG_OR_DICOM_FOLDER")
    d.add_argument("--min-score", type=number_in(float, 0, 1), default=0.5, help="lowest score reported (0..1)")
    d.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    HANDLERS["detect"] = _cmd_detect



def load_image_cases(manifest: str | os.PathLike, need_boxes: bool = False) -> tuple[list, list[dict]]:
    """The manifest's cases as plugin ImageCases, and their provenance (paths and hashes)."""
    from ..io.case_manifest import read_manifest
    from ..plugins import ImageCase
    from ..plugins.checkpoint import sha256_file

    rows = read_manifest(manifest, need_boxes=need_boxes)
    cases = [ImageCase(r.image, r.label, r.boxes, r.name) for r in rows]
    sources = [{"image": str(r.path.resolve()), "image_sha256": sha256_file(r.path), "label": r.label,
                "manifest": str(Path(manifest).resolve())} for r in rows]
    return cases, sources


def _train_handler(kind: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        return _cmd_train(args, kind)

    return handler


def _cmd_train(args: argparse.Namespace, kind: str) -> int:
    from ..io.case_manifest import read_manifest
    from ..jobs.progress import TerminalProgress
    from ..plugins import PluginError, get_plugin, preferred

    try:
        plugin = get_plugin(args.model or preferred(kind) or _DEFAULT[kind], kind)
    except PluginError as exc:
        raise LoadError("--model", str(exc)) from None
    check_device(args.device)
    rank = int(os.environ.get("RANK", "0"))
    cfg = config_from_options(plugin, args, {"minutes": ("minutes", "--minutes"), "steps": ("max_steps", "--steps"),
                                             "seed": ("seed", "--seed")})
    need_boxes = kind == "detector"
    listed = read_manifest(args.cases, load=False, need_boxes=need_boxes)  # the form, before any folder is touched
    out = Path(args.out)
    if rank == 0:
        prepare_out_folder(out, inputs=[args.cases] + [str(r.path) for r in listed], what=f"{plugin.name} checkpoint",
                           ours=plugin.owns_checkpoint, overwrite=args.overwrite)
    cases, sources = load_image_cases(args.cases, need_boxes)
    os.environ["LUCID3D_DEVICE"] = args.device
    progress = TerminalProgress(f"training {plugin.name}", disable=args.quiet or rank != 0)
    with CtrlC(progress):
        try:
            model = plugin.train(cases, cfg, progress, checkpoint_dir=str(out) if rank == 0 else None, sources=sources)
        except ValueError as exc:  # cases the method cannot learn from as they are
            raise LoadError(args.cases, " ".join(str(exc).split())) from None
        finally:
            progress.close()
            from ..plugins.training import finish_distributed

            finish_distributed()
    if rank == 0:
        m = model.metrics
        summary = {k: m.get(k) for k in ("mode", "best_val_score", "steps", "seconds", "stopped_by",
                                         "validation_cases", "ddp") if k in m}
        summary["checkpoint"] = str(out)
        print(json.dumps(summary))
    return 0


def _nifti_out(path: str) -> Path:
    p = Path(path)
    if not (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
        raise LoadError(p, "the output must end in .nii or .nii.gz")
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise LoadError(p, f"the folder {p.parent} does not exist")
    return p


def _load(args: argparse.Namespace, kind: str, outputs: list[Path]):
    """(plugin, model, volume) of a classify/detect call, every input checked first."""
    from ..model import Volume
    from ..plugins import plugin_for_checkpoint
    from .common import load_input

    ckpt, src = Path(args.checkpoint), Path(args.input)
    for o in outputs:
        refuse_same_file(o, input=src)
        if (src.is_dir() and o.resolve().is_relative_to(src.resolve())) or o.resolve().is_relative_to(ckpt.resolve()):
            raise LoadError(o, "refusing to write into an input folder")
    check_device(args.device)
    plugin = plugin_for_checkpoint(ckpt, kind)
    model = plugin.load(ckpt, device=args.device)
    volume = load_input(args.input)
    if not isinstance(volume, Volume) or getattr(volume.array, "ndim", 0) != 3:
        raise LoadError(args.input, "not a 3D image volume")
    return plugin, model, volume


def _cmd_classify(args: argparse.Namespace) -> int:
    from ..io import save_nifti

    sal_out = _nifti_out(args.saliency) if args.saliency else None
    plugin, model, volume = _load(args, "classifier", [sal_out] if sal_out else [])
    result = plugin.classify(model, volume)
    if sal_out is not None:
        sal = plugin.saliency(model, volume)
        if sal is None:
            raise LoadError("--saliency", f"the {plugin.name} classifier makes no saliency map")
        save_nifti(sal, sal_out, protect=[Path(args.input), Path(args.checkpoint) / "model.safetensors"])
    print(json.dumps({"label": result["label"], "probabilities": result["probabilities"]}))
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    plugin, model, volume = _load(args, "detector", [])
    found = plugin.detect(model, volume, float(args.min_score))
    print(json.dumps({"boxes": [{"box": list(d["box"]), "score": d["score"]} for d in found]}))
    return 0
