"""``pretrain``: learn a renderer's scene-independent weights across several scenes (NPBG++'s
encoder and renderer), through the plugin's ``pretrain``.

    python main.py pretrain METHOD --scenes DIR [DIR ...] --out CKPT [--minutes M] [--iters N]
                                   [--size S] [--device cpu|cuda] [--seed N] [--resume CKPT]

Each DIR is a posed-photo scene with its point cloud as ``DIR/points.ply`` (what ``capture``
writes), or ``--points`` given once per scene in the same order. ``--out`` must be new or empty.
``--resume`` continues from pretrained weights (their architecture; their steps and seconds are
added to the totals in the new folder's metrics); the folder itself is only read.
One line ``error: PATH: reason`` and exit status 2 for any bad input, with nothing written.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path
from typing import Callable

from ..model.errors import LoadError
from .common import CtrlC, add_set_option, check_device, config_from_options, number_in, prepare_out_folder

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub) -> None:
    p = sub.add_parser("pretrain", help="pretrain a renderer across scenes (npbgpp)")
    p.add_argument("method", metavar="METHOD", help="renderer plugin that can be pretrained: npbgpp")
    p.add_argument("--scenes", nargs="+", required=True, metavar="DIR", help="posed-photo scenes")
    p.add_argument("--points", nargs="+", metavar="PTS",
                   help="each scene's point cloud, in the order of --scenes (default: DIR/points.ply)")
    p.add_argument("--out", required=True, metavar="CKPT", help="folder for the pretrained weights: new or empty")
    p.add_argument("--minutes", type=number_in(float, 0, 100_000), default=10.0, help="wall-clock budget (default 10)")
    p.add_argument("--iters", type=number_in(int, 0, 100_000_000), help="optimisation steps at most, 0 = no limit")
    p.add_argument("--size", type=number_in(int, 16, 4096), help="training image size (longer side)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seed", type=number_in(int, 0, 2**32 - 1))
    p.add_argument("--resume", metavar="CKPT", help="pretrained weights to continue from (e.g. a folder this wrote)")
    add_set_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    HANDLERS["pretrain"] = _cmd_pretrain


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from ..jobs.progress import Cancelled, TerminalProgress
    from ..plugins import PluginError, get_plugin
    from .fit import _frames, _load_points, _load_scene

    try:
        plugin = get_plugin(args.method, "renderer")
    except PluginError as exc:
        raise LoadError(args.method, str(exc)) from None
    if not callable(getattr(plugin, "pretrain", None)):
        raise LoadError(args.method, f"the {plugin.name} renderer has nothing to pretrain")
    check_device(args.device)
    cfg = config_from_options(plugin, args, {"minutes": ("minutes", "--minutes"), "iters": ("iters", "--iters"),
                                              "size": ("size", "--size"), "seed": ("seed", "--seed")})
    if args.minutes == 0 and not args.iters:
        raise LoadError("--minutes", "0 (no time limit) needs --iters N")
    points = args.points or [str(Path(d) / "points.ply") for d in args.scenes]
    if len(points) != len(args.scenes):
        raise LoadError("--points", f"{len(points)} point clouds for {len(args.scenes)} scenes")
    out = Path(args.out)
    prepare_out_folder(out, inputs=list(args.scenes) + list(points) + ([args.resume] if args.resume else []),
                       what="pretrained model")
    if args.resume and "resume" not in inspect.signature(plugin.pretrain).parameters:
        raise LoadError("--resume", f"the {plugin.name} renderer cannot continue a pretraining")
    scenes = []
    for d, pts in zip(args.scenes, points):
        views = _load_scene(d)
        _frames(views, d, "train")
        if not Path(pts).exists():
            raise LoadError(pts, "no such point cloud (capture writes DIR/points.ply; or give --points)")
        scenes.append((Path(d).name, views, _load_points(pts)))
    progress = TerminalProgress(f"pretraining {plugin.name}", disable=args.quiet)
    with CtrlC(progress):
        try:
            extra = {"resume": str(args.resume)} if args.resume else {}
            metrics = plugin.pretrain(scenes, cfg, progress, out=str(out), **extra)
        except ValueError as exc:
            raise LoadError(args.scenes[0], " ".join(str(exc).split())) from None
        except Cancelled:
            raise LoadError(out, "cancelled; nothing written") from None
        finally:
            progress.close()
    print(json.dumps({"plugin": plugin.name, "steps": metrics.get("steps"), "seconds": metrics.get("seconds"),
                      "heldout_psnr": metrics.get("heldout_psnr"), "out": str(out)}))
    return 0
