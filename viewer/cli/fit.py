"""``fit``, ``render`` and ``evaluate``: the neural renderers (``plugins/texture``, ``plugins/dnr``,
any renderer plugin) from a terminal, with the same plugin calls the window makes.

    python main.py fit METHOD --scene DIR --mesh MESH --out CKPT [--minutes M] [--iters N]
                              [--size S] [--val-fraction F] [--device cpu|cuda]
    python main.py fit METHOD --scene DIR --points PTS --out CKPT ...   (methods that render points;
                              PTS may be a COLMAP points3D.txt/.bin; [--vgg-weights FILE] [--pretrained CKPT])
    python main.py fit METHOD --scene DIR --out CKPT [--refine-cameras] ...   (methods that learn the surface: idr)
    python main.py render --checkpoint CKPT --scene DIR [--split test] --out OUTDIR
    python main.py render --checkpoint CKPT --orbit N [--size S] --out OUTDIR_OR.mp4
    python main.py evaluate --checkpoint CKPT --scene DIR [--split test]

Which of ``--mesh``/``--points``/neither a method takes is its plugin's ``geometry``.
``fit`` trains on the scene's train split and scores its val (else test) split while fitting,
keeping a checkpoint on disk (the best by val PSNR; with only a test split, the latest, so the
test views never choose it; Ctrl-C or the time budget keep it too); a mesh without uv is
parametrized with xatlas, and the result is cached in the checkpoint (``CKPT/mesh.npz``): a refit
into the same folder from the same mesh file reuses it. ``render`` writes one PNG per frame, named
by the frame (``r_000.png``), at the frame's size, or an orbit around the mesh. ``evaluate`` prints
``{"psnr", "ssim", "views": [{"name", "psnr", "ssim"}]}`` of the 8-bit renders (what ``render``
writes) against the photos, both composited over the scene's background colour.

``fit --out`` must be new or empty, or hold a checkpoint of the same method and be given
``--overwrite``; ``render``'s OUTDIR likewise (with ``--overwrite``, one that holds only PNGs).
Every failure is one line ``error: PATH: reason`` and exit status 2, with nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Callable

from .common import CtrlC, add_set_option, check_device, config_from_options, load_input, number_in, only_files, prepare_out_folder, reading
from ..model.errors import LoadError

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}
MAX_SIZE = 4096  # pixels, as capture: an orbit frame or a training frame's longer side
MAX_POINTS = 20_000_000  # a point renderer's cloud


def add_parsers(sub) -> None:
    f = sub.add_parser("fit", help="fit a neural renderer (texture, dnr, ...) to a posed-photo scene and its mesh")
    f.add_argument("method", metavar="METHOD", help="renderer plugin: texture, dnr, ...")
    f.add_argument("--scene", required=True, metavar="DIR", help="transforms.json / Blender / COLMAP scene")
    f.add_argument("--mesh", metavar="MESH",
                   help="the scene's mesh (.obj/.ply/...), in its world frame (methods that render a mesh)")
    f.add_argument("--points", metavar="PTS",
                   help="the scene's point cloud (.ply/.xyz/.pts/.las/.laz, or a COLMAP model's points3D), "
                        "in its world frame (methods that render points)")
    f.add_argument("--out", required=True, metavar="CKPT", help="checkpoint folder: new or empty")
    f.add_argument("--overwrite", action="store_true",
                   help="replace a checkpoint of the same method in --out (its parametrized mesh is reused)")
    f.add_argument("--minutes", type=number_in(float, 0, 100_000), help="wall-clock budget, 0 = none (default: the plugin's)")
    f.add_argument("--iters", type=number_in(int, 0, 100_000_000), help="optimisation steps at most, 0 = no limit")
    f.add_argument("--size", type=number_in(int, 16, MAX_SIZE),
                   help=f"training image size: longer side at most S pixels (16..{MAX_SIZE})")
    f.add_argument("--val-fraction", type=number_in(float, 0, 0.9), metavar="F",
                   help="carve this share of the training views out as the val split that chooses the kept "
                        "checkpoint (default: the scene's own val split, if any)")
    f.add_argument("--vgg-weights", metavar="FILE",
                   help="a local VGG-19 state dict for a perceptual loss (methods that have one; nothing downloads)")
    f.add_argument("--pretrained", metavar="CKPT", help="pretrained weights to start from (methods that have them)")
    f.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    f.add_argument("--seed", type=number_in(int, 0, 2**32 - 1))
    f.add_argument("--refine-cameras", action="store_const", const=True, default=None,
                   help="learn a rotation and translation per training view (methods that can, e.g. idr)")
    add_set_option(f)
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    HANDLERS["fit"] = _cmd_fit

    r = sub.add_parser("render", help="render a scene's views or an orbit with a renderer checkpoint")
    r.add_argument("--checkpoint", required=True, metavar="CKPT")
    r.add_argument("--scene", metavar="DIR", help="render the cameras of this scene's --split")
    r.add_argument("--split", default="test", help="train, val or test (default test)")
    r.add_argument("--orbit", type=number_in(int, 1, 100_000), metavar="N", help="render N views on a circle around the mesh")
    r.add_argument("--size", type=number_in(int, 16, MAX_SIZE), default=256,
                   help=f"orbit image size in pixels, 16..{MAX_SIZE} (default 256)")
    r.add_argument("--fps", type=number_in(float, 0, 240, lo_open=True), default=30.0,
                   help="frames per second of an .mp4 (default 30)")
    r.add_argument("--out", required=True, metavar="OUTDIR_OR.mp4")
    r.add_argument("--overwrite", action="store_true",
                   help="write into an OUTDIR that holds nothing but PNGs (an earlier render)")
    r.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    HANDLERS["render"] = _cmd_render

    e = sub.add_parser("evaluate", help="PSNR and SSIM of a renderer checkpoint on a scene's split, as JSON")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--scene", required=True, metavar="DIR")
    e.add_argument("--split", default="test", help="train, val or test (default test)")
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    HANDLERS["evaluate"] = _cmd_evaluate



def _load_scene(path: str):
    from ..io.photosets import load_viewset

    with reading(path):  # anything else a hostile scene makes the reader raise
        try:
            return load_viewset(path)
        except (ValueError, OSError) as exc:  # the reader's own messages say what is wrong
            raise LoadError(path, " ".join(str(exc).split())) from None


def _frames(scene, path: str, split: str) -> list:
    frames = scene.split(split)
    if not frames:
        have = ", ".join(f"{s} ({len(scene.split(s))})" for s in scene.splits) or "none"
        raise LoadError(path, f"the {split} split is empty (splits: {have})")
    return frames


def _load_mesh(path: str):
    from ..model import Mesh

    mesh = load_input(path)
    if not isinstance(mesh, Mesh) or mesh.n_faces == 0:
        raise LoadError(path, "not a triangle mesh")
    return mesh


def _load_points(path: str):
    import numpy as np

    from ..model import PointCloud

    cloud = load_input(path)  # a COLMAP model's points3D.txt/.bin too
    if not isinstance(cloud, PointCloud) or cloud.n_points == 0:
        raise LoadError(path, "not a point cloud")
    if cloud.n_points > MAX_POINTS:
        raise LoadError(path, f"{cloud.n_points:,} points; at most {MAX_POINTS:,} are supported (subsample it first)")
    if not np.all(np.isfinite(cloud.points)):
        raise LoadError(path, f"{int((~np.isfinite(cloud.points).all(1)).sum())} points have NaN or infinite coordinates")
    return cloud


def _geometry_option(plugin, args: argparse.Namespace) -> tuple[str | None, str | None]:
    """("mesh"|"points"|None, its path) the method needs, from --mesh/--points; one clear line
    when the wrong one or none is given."""
    need = getattr(plugin, "geometry", "mesh")
    given = {"mesh": args.mesh, "points": args.points}
    if need == "none":
        extra = [f"--{k}" for k, v in given.items() if v]
        if extra:
            raise LoadError(args.method, f"{plugin.name} learns its geometry from the photos: drop {' '.join(extra)}")
        return None, None
    other = "points" if need == "mesh" else "mesh"
    if given[other] and not given[need]:
        raise LoadError(args.method, f"{plugin.name} renders a {'triangle mesh' if need == 'mesh' else 'point cloud'}: "
                                     f"give --{need}, not --{other}")
    if not given[need]:
        raise LoadError(args.method, f"{plugin.name} needs --{need} "
                                     f"({'the scene mesh' if need == 'mesh' else 'the scene point cloud'})")
    return need, given[need]


NOT_A_RENDERER = "not a Lucid3D renderer checkpoint (a folder with config.json, model.safetensors and mesh.npz)"


def _load_model(path: str, device: str):
    """The renderer plugin a checkpoint folder names, and the model it loads from there."""
    from ..plugins import PluginError, checkpoint_plugin_name, discover, get_plugin

    check_device(device)
    p = Path(path)
    if not p.is_dir():
        raise LoadError(p, "no such checkpoint folder" if not p.exists() else "a renderer checkpoint is a folder")
    name = checkpoint_plugin_name(p)
    other = discover().get(name) if name is not None else None
    if name is None or (other is not None and other.kind != "renderer"):  # none, or a segmenter's
        raise LoadError(p, NOT_A_RENDERER)
    try:
        plugin = get_plugin(name, "renderer")
    except PluginError as exc:
        raise LoadError(p, str(exc)) from None
    return plugin, plugin.load(p, device=device)


def _cmd_fit(args: argparse.Namespace) -> int:
    from ..jobs.progress import Cancelled, TerminalProgress
    from ..plugins import GeometryError, PluginError, get_plugin
    from ..plugins.checkpoint import sha256_file

    try:
        plugin = get_plugin(args.method, "renderer")
    except PluginError as exc:
        raise LoadError(args.method, str(exc)) from None
    check_device(args.device)
    rank = int(os.environ.get("RANK", "0"))
    cfg = config_from_options(plugin, args, {"minutes": ("minutes", "--minutes"), "iters": ("iters", "--iters"),
                                              "size": ("size", "--size"), "seed": ("seed", "--seed"),
                                              "val_fraction": ("val_fraction", "--val-fraction"),
                                              "vgg_weights": ("vgg_weights", "--vgg-weights"),
                                              "pretrained": ("pretrained", "--pretrained"),
                                              "refine_cameras": ("refine_cameras", "--refine-cameras")})
    for option, value in (("--vgg-weights", args.vgg_weights), ("--pretrained", args.pretrained)):
        if value is not None and not Path(value).exists():
            raise LoadError(value, f"no such file or folder ({option})")
    kind, geo_path = _geometry_option(plugin, args)
    out = Path(args.out)
    if rank == 0:  # only rank 0 writes; the others would see its first checkpoint appear
        prepare_out_folder(out, inputs=[args.scene] + ([geo_path] if geo_path else []), what=f"{plugin.name} checkpoint",
                           ours=plugin.owns_checkpoint, overwrite=args.overwrite)
    scene = _load_scene(args.scene)
    _frames(scene, args.scene, "train")
    geometry = None if kind is None else (_load_mesh if kind == "mesh" else _load_points)(geo_path)
    sources = {"scene": str(Path(args.scene).resolve())}
    if kind is not None:  # provenance, and what lets a refit reuse work done on the same file
        sources.update({kind: str(Path(geo_path).resolve()), f"{kind}_sha256": sha256_file(geo_path)})
    os.environ["LUCID3D_DEVICE"] = args.device
    progress = TerminalProgress(f"fitting {plugin.name}", disable=args.quiet or rank != 0)
    with CtrlC(progress):
        try:
            # every rank gets the folder (an earlier fit's parametrized mesh there is read by all,
            # so that all fit the same atlas); rank 0 alone writes
            model = plugin.fit(scene, geometry, cfg, progress, checkpoint_dir=str(out), sources=sources)
        except ValueError as exc:
            # what is wrong with the cloud or the mesh is said of that file, the rest of the scene
            about_geometry = geo_path is not None and isinstance(exc, GeometryError)
            raise LoadError(geo_path if about_geometry else args.scene, " ".join(str(exc).split())) from None
        except Cancelled:
            raise LoadError(out, "cancelled before the first checkpoint; nothing written") from None
        finally:
            progress.close()
            from ..plugins.training import finish_distributed

            finish_distributed()
    if rank == 0:
        m = model.metrics
        keys = ("heldout_psnr", "best_heldout_psnr", "best_step", "steps", "seconds", "stopped_by", "heldout_from",
                "ddp")
        summary = {"plugin": plugin.name, **{k: m[k] for k in keys if k in m}, "checkpoint": str(out)}
        print(json.dumps(summary))
    return 0


def _png_names(frames, path: str) -> list[str]:
    names = [Path(f.name or f.camera.name or f"frame_{i:04d}").stem + ".png" for i, f in enumerate(frames)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise LoadError(path, f"several frames would be written as {dup[0]}")
    return names


def _out_folder(out: Path, protect: list[Path], overwrite: bool) -> None:
    """Render's OUTDIR: new or empty; with --overwrite, one that holds nothing but PNGs."""
    prepare_out_folder(out, inputs=protect, what="set of rendered PNGs", overwrite=overwrite,
                       ours=lambda d: only_files(d, lambda n: n.lower().endswith(".png")))


def _write_png(img, path: Path, protect: list[Path]) -> None:
    from PIL import Image

    from ..io.common import atomic_path

    with atomic_path(path, protect=protect) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def _cmd_render(args: argparse.Namespace) -> int:
    import numpy as np

    from ..analysis.images import to_uint8

    from ..model.camera import orbit_cameras

    if (args.scene is None) == (args.orbit is None):
        raise LoadError("--scene/--orbit", "give exactly one of --scene DIR or --orbit N")
    out, ckpt = Path(args.out), Path(args.checkpoint)
    mp4 = out.suffix.lower() == ".mp4"
    if args.scene is not None:
        if mp4:
            raise LoadError(out, "scene views are written as PNGs into a folder, not a video")
        scene = _load_scene(args.scene)
        frames = _frames(scene, args.scene, args.split)
        names = _png_names(frames, args.scene)
        _out_folder(out, [Path(args.scene), ckpt], args.overwrite)
        plugin, model = _load_model(args.checkpoint, args.device)
        jobs = [(f.camera, n) for f, n in zip(frames, names)]
        background = scene.background
    else:
        if mp4:
            if not (out.parent if str(out.parent) else Path(".")).is_dir():
                raise LoadError(out, f"the folder {out.parent} does not exist")
            if out.resolve().is_relative_to(ckpt.resolve()):
                raise LoadError(out, "refusing to write into the checkpoint")
        else:
            _out_folder(out, [ckpt], args.overwrite)
        plugin, model = _load_model(args.checkpoint, args.device)
        o = plugin.orbit(model)
        if o is None:
            raise LoadError(ckpt, f"the {plugin.name} renderer does not know where to fly around its scene: "
                                  "render the cameras of a scene with --scene DIR instead")
        cams = orbit_cameras(args.orbit, o.center, o.radius, args.size, elevation=o.elevation,
                             view_angle=o.view_angle, up=o.up)
        jobs = [(c, f"{c.name}.png") for c in cams]
        background = None
    if mp4:
        import imageio.v3 as iio

        from ..io.common import atomic_path

        images = [to_uint8(plugin.render(model, cam)) for cam, _ in jobs]
        with atomic_path(out, protect=[ckpt]) as tmp:
            iio.imwrite(tmp, np.stack(images), extension=".mp4", fps=args.fps, macro_block_size=1)
        print(json.dumps({"out": str(out), "frames": len(images), "size": args.size}))
        return 0
    out.mkdir(exist_ok=True)
    for cam, name in jobs:
        _write_png(to_uint8(plugin.render(model, cam, background)), out / name, [ckpt])
    print(json.dumps({"out": str(out), "frames": len(jobs)}))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    scene = _load_scene(args.scene)
    frames = _frames(scene, args.scene, args.split)
    plugin, model = _load_model(args.checkpoint, args.device)
    from ..analysis.images import evaluate_views

    result = evaluate_views(plugin, model, frames, scene.background)
    print(json.dumps({**result, "split": args.split, "plugin": plugin.name}))
    return 0
