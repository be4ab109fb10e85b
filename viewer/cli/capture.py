"""``capture``: a synthetic posed-photo data set of a textured mesh, in the Blender/nerfstudio
layout, for training and testing neural renderers.

    python main.py capture MESH --out DIR [--views N] [--size S] [--test-fraction F]
                           [--texture IMG] [--specular K] [--seed N]

``N`` cameras spread over a sphere around the mesh (all framing its bounding sphere, 40 degree
field of view, world +z up) are split at random (by ``--seed``) into ``round(N * F)`` test views
and the rest for training: ``--views 120 --test-fraction 0.1667`` gives 100 / 20; with ``F = 0``
every view is a training view and no test file is written. A mesh without uv gets an xatlas
atlas; a mesh without a texture, or any mesh with ``--texture``, gets the procedural texture
(1024 px, from ``--seed``) or the given image. Lights are fixed in the world (key, fill, rim).

DIR must be new or empty (never overwritten); it is written under a temporary name and renamed
at the end, so a failure leaves nothing behind. It receives ``train/r_000.png`` ...,
``test/r_000.png`` ... (RGBA, alpha = coverage, colour over white where uncovered),
``transforms_train.json`` / ``transforms_test.json`` (``camera_angle_x``, ``fl_x``, ``fl_y``,
``cx``, ``cy``, ``w``, ``h``, ``background``; frames with ``file_path`` like ``./train/r_000``
and the OpenGL-axes camera-to-world ``transform_matrix``), and ``mesh.obj`` + ``mesh.mtl`` +
``mesh.png`` (the mesh as rendered: uv, normals, texture). A one-line JSON summary is printed.
"""

from __future__ import annotations

import argparse
import json
from typing import Callable


from ..compute.photoset import capture_dataset
from .common import number_in

__all__ = ["add_parsers", "HANDLERS"]

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_parsers(sub) -> None:
    c = sub.add_parser("capture", help="render a posed RGBA data set of a textured mesh (Blender layout)")
    c.add_argument("mesh", metavar="MESH", help="a .obj/.ply/.stl/.vtk/.vtp mesh")
    c.add_argument("--out", required=True, metavar="DIR", help="new or empty folder to write")
    c.add_argument("--views", type=int, default=100, help="number of views, train + test (default 100)")
    c.add_argument("--size", type=int, default=256, help="image edge in pixels (default 256)")
    c.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of the views held out for testing, rounded (default 0.2)")
    c.add_argument("--texture", metavar="IMG", help="texture image to use (else the mesh's own, or procedural)")
    c.add_argument("--specular", type=float, default=0.5, help="specular coefficient, 0 = matte (default 0.5)")
    c.add_argument("--seed", type=number_in(int, 0, 2**32 - 1), default=0, help="cameras, split and procedural texture (default 0)")
    HANDLERS["capture"] = _cmd_capture


def _cmd_capture(args: argparse.Namespace) -> int:
    summary = capture_dataset(args.mesh, args.out, views=args.views, size=args.size,
                              test_fraction=args.test_fraction, texture=args.texture,
                              specular=args.specular, seed=args.seed)
    print(json.dumps(summary))
    return 0


