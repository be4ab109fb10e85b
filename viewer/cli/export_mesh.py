"""``export-mesh``: the surface a renderer learned (IDR's zero level set) as a mesh file.

    python main.py export-mesh --checkpoint CKPT --out MESH.ply [--resolution N]
                               [--view-dir X Y Z] [--overwrite] [--device cpu|cuda]

The zero level set is found by marching cubes (VTK's flying edges) on an N^3 grid over the
learned scene's bounds, in the scene's world frame, with vertex colours from the rendering network
(each vertex seen from the mean direction of the training cameras facing it, or all from
``--view-dir``). A renderer that learns no surface (one fitted on a given mesh), an empty surface,
or an ``--out`` that exists (without ``--overwrite``) is one line and exit status 2, and nothing
is written; the file is written under a temporary name and renamed at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

from ..model.errors import LoadError
from .common import check_device, number_in

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}
MAX_RESOLUTION = 1024  # 1024^3 SDF values are 4 GB of float32: more is not a laptop's


def add_parsers(sub) -> None:
    e = sub.add_parser("export-mesh", help="the surface a renderer learned (idr) as a mesh with vertex colours")
    e.add_argument("--checkpoint", required=True, metavar="CKPT")
    e.add_argument("--out", required=True, metavar="MESH.ply", help="mesh file to write (.ply, .vtp, .vtk, .obj, .stl)")
    e.add_argument("--resolution", type=number_in(int, 16, MAX_RESOLUTION), default=256,
                   help=f"marching-cubes grid points per side, 16..{MAX_RESOLUTION} (default 256)")
    e.add_argument("--view-dir", type=number_in(float, -1e9, 1e9), nargs=3, metavar=("X", "Y", "Z"),
                   help="one view direction (world, camera -> surface) for every vertex's colour")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    HANDLERS["export-mesh"] = _cmd_export_mesh


def _check_out(out: Path, ckpt: Path, overwrite: bool) -> None:
    from ..io.meshes import MESH_FORMATS

    if out.suffix.lower() not in MESH_FORMATS:
        raise LoadError(out, f"cannot save a mesh as {out.suffix or 'no extension'} "
                             f"({', '.join(MESH_FORMATS)})")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LoadError(out, f"the folder {parent} does not exist")
    if out.is_dir():
        raise LoadError(out, "is a folder")
    if ckpt.exists() and out.resolve().is_relative_to(ckpt.resolve()):
        raise LoadError(out, "refusing to write into the checkpoint")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise LoadError(out, "exists: add --overwrite to replace it")


def _cmd_export_mesh(args: argparse.Namespace) -> int:
    import math

    from ..io.meshes import save_mesh
    from ..plugins import plugin_for_checkpoint

    out, ckpt = Path(args.out), Path(args.checkpoint)
    _check_out(out, ckpt, args.overwrite)
    if args.view_dir is not None and math.hypot(*args.view_dir) == 0:
        raise LoadError("--view-dir", "must not be zero")
    check_device(args.device)
    plugin = plugin_for_checkpoint(ckpt, "renderer")
    if not callable(getattr(plugin, "extract_mesh", None)):
        raise LoadError(ckpt, f"the {plugin.name} renderer learns no surface to export (it renders a given one)")
    model = plugin.load(ckpt, device=args.device)
    mesh = plugin.extract_mesh(model, args.resolution, args.view_dir)
    if mesh is None or mesh.n_faces == 0:
        raise LoadError(ckpt, f"the learned surface is empty (no zero crossing on the {args.resolution}^3 grid); "
                              "nothing written")
    save_mesh(mesh, out, protect=(ckpt,))
    b = [round(float(v), 6) for v in mesh.bounds()]
    print(json.dumps({"out": str(out), "points": mesh.n_points, "faces": mesh.n_faces, "bounds": b,
                      "resolution": args.resolution, "plugin": plugin.name}))
    return 0
