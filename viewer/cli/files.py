"""The file commands: ``info``, ``convert``, ``screenshot``, and the window (``gui``, ``demo``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..model.errors import LoadError
from .common import CliError, load_input, number_in, refuse_same_file


def add_parsers(sub) -> None:
    g = sub.add_parser("gui", help="open the window (default)")
    g.add_argument("paths", nargs="*", help="files or DICOM folders to open")
    g.add_argument("--labels", action="append", metavar="PATH", help="open a volume as a label layer")
    d = sub.add_parser("demo", help="open the window on a built-in demo scene")
    d.add_argument("name", nargs="?", default="default",
                   choices=("default", "segmentation", "brain", "rendering", "lesions"),
                   help="default: CT phantom + labels + textured globe; segmentation: two phantom "
                        "cases for training; brain: MNI152 T1 with grey/white matter; rendering: a "
                        "specular capture of a textured globe with its mesh, for neural rendering; lesions: a CT "
                        "crop with a synthetic lesion and its true box")
    d.add_argument("--labels", action="append", help=argparse.SUPPRESS)

    i = sub.add_parser("info", help="print what a file holds, as JSON")
    i.add_argument("path")
    i.add_argument("--labels", action="store_true", help="read the volume as labels")

    c = sub.add_parser("convert", help="write any volume (a DICOM folder too) as NIfTI")
    c.add_argument("input")
    c.add_argument("-o", "--output", required=True, help="OUTPUT.nii.gz")
    c.add_argument("--labels", action="store_true", help="store as a label map")

    s = sub.add_parser("screenshot", help="render a view offscreen to a PNG (no display needed)")
    s.add_argument("paths", nargs="+")
    s.add_argument("-o", "--output", required=True)
    s.add_argument("--view", choices=("axial", "coronal", "sagittal", "3d"))
    s.add_argument("--size", type=_size, default=(512, 512), help="WxH, default 512x512")
    s.add_argument("--preset", help="window/level preset (brain, subdural, bone, lung, abdomen, "
                   "soft_tissue, ...) or a volume-rendering preset for --view 3d (ct_bone, ct_soft, mip)")
    s.add_argument("--window", type=number_in(float, 0, 1e9, lo_open=True), help="window width (> 0)")
    s.add_argument("--level", type=number_in(float, -1e9, 1e9), help="window centre")
    s.add_argument("--labels", action="append", metavar="MASK", help="label volume drawn over the image")
    s.add_argument("--cursor", type=number_in(float, -1e9, 1e9), nargs=3, metavar=("R", "A", "S"),
                   help="crosshair / slice position in RAS mm (default: the volume's centre)")


def info_dict(data: Any) -> dict[str, Any]:
    """What ``main.py info`` prints for a loaded Volume, LabelMap, Mesh, PointCloud or ViewSet;
    ``outside_files`` lists files its header pulled in from outside the opened file's folder."""
    out = _info(data)
    outside = (getattr(data, "meta", None) or {}).get("outside_files")
    if outside:
        out["outside_files"] = [str(p) for p in outside]
    return out


def _info(data: Any) -> dict[str, Any]:
    from ..model import LabelMap, Mesh, PointCloud, ViewSet, Volume

    if isinstance(data, ViewSet):
        splits = {name: len(data.split(name)) for name in data.splits}
        sizes = sorted({(f.camera.width, f.camera.height) for f in data.frames})
        return {"kind": "viewset", "frames": len(data.frames), "splits": splits,
                "image_sizes": [list(s) for s in sizes], "background": list(data.background),
                "n_points": data.points.n_points if data.points is not None else 0,
                "camera_bounds": data.bounds()}

    if isinstance(data, (Volume, LabelMap)):
        vol = data if isinstance(data, Volume) else Volume(data.array, data.affine)
        st = vol.stats()
        out: dict[str, Any] = {
            "kind": "volume", "shape": list(vol.shape), "spacing": [round(s, 6) for s in vol.spacing],
            "affine": [[float(x) for x in row] for row in vol.affine], "axcodes": vol.axcodes,
            "dtype": str(vol.array.dtype), "min": st["min"], "max": st["max"],
        }
        if isinstance(data, Volume):
            if data.modality:
                out["modality"] = data.modality
            for key in ("frames", "note", "format"):
                if key in data.meta:
                    out[key] = data.meta[key]
            if "series" in data.meta and len(data.meta["series"]) > 1:
                out["series"] = data.meta["series"]
        return out
    if isinstance(data, Mesh):
        return {"kind": "mesh", "n_points": data.n_points, "n_faces": data.n_faces,
                "bounds": data.bounds(), "has_uv": data.uv is not None,
                "has_texture": data.texture is not None}
    if isinstance(data, PointCloud):
        return {"kind": "points", "n_points": data.n_points, "bounds": data.bounds(),
                "has_colors": data.colors is not None}
    raise TypeError(type(data).__name__)


def _cmd_info(args: argparse.Namespace) -> int:
    data = load_input(args.path, as_labels=args.labels)
    print(json.dumps(info_dict(data)))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from ..io import save_nifti
    from ..model import Volume

    out = Path(args.output)
    if not (out.name.endswith(".nii") or out.name.endswith(".nii.gz")):
        raise LoadError(out, "the output must end in .nii or .nii.gz")
    refuse_same_file(out, input=args.input)
    data = load_input(args.input, as_labels=args.labels)
    if not isinstance(data, Volume) and not hasattr(data, "table"):
        raise LoadError(args.input, "only volumes can be converted to NIfTI")
    src = Path(args.input)
    if src.is_dir() and out.resolve().is_relative_to(src.resolve()):
        raise LoadError(out, "refusing to write into the input folder")
    save_nifti(data, out, protect=[src])
    note = data.meta.get("note")
    if note:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise ValueError
        return w, h
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH between 16 and 8192, got {text!r}") from None


def _cmd_screenshot(args: argparse.Namespace) -> int:
    from ..io import atomic_path
    from ..model import ImageLayer, Scene, layer_for
    from ..resources import volume_presets, window_level_presets

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise LoadError(out, "the output must be a .png file")
    for p in list(args.paths) + list(args.labels or []):
        refuse_same_file(out, input=p)
    scene = Scene()
    for p in args.paths:
        scene.add(layer_for(load_input(p)))
    for p in args.labels or []:
        scene.add(layer_for(load_input(p, as_labels=True)))
    images = [l for l in scene if isinstance(l, ImageLayer)]
    wl_presets, vr_presets = window_level_presets(), volume_presets()
    view = args.view or ("axial" if scene.reference_image() is not None else "3d")
    for layer in images:
        if args.preset:
            if args.preset in wl_presets:
                layer.window, layer.level = wl_presets[args.preset]
            elif args.preset in vr_presets:
                layer.render_mode = args.preset
            else:
                raise CliError(f"unknown preset {args.preset!r}; choose from "
                               f"{', '.join(list(wl_presets) + list(vr_presets))}")
        if args.window is not None:
            layer.window = args.window
        if args.level is not None:
            layer.level = args.level
        if view == "3d" and layer.render_mode == "off":
            layer.render_mode = "ct_bone" if layer.data.modality == "CT" else "mr_default"
    if args.cursor:
        scene.cursor = np.array(args.cursor, float)
    from ..render.offscreen import render_scene

    img = render_scene(scene, view, args.size)
    from PIL import Image

    with atomic_path(out, protect=list(args.paths) + list(args.labels or [])) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")
    return 0


def _cmd_gui(args: argparse.Namespace) -> int:
    from ..ui.app import run_app

    if args.command == "demo":
        return run_app(demo=args.name)
    return run_app(paths=list(args.paths or []), labels=list(args.labels or []))



HANDLERS = {"info": _cmd_info, "convert": _cmd_convert, "screenshot": _cmd_screenshot,
            "gui": _cmd_gui, "demo": _cmd_gui}
