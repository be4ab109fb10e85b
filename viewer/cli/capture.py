"""``capture``: a synthetic posed-photo data set of a textured mesh, in the Blender/nerfstudio
layout, for training and testing neural renderers.

    python main.py capture MESH --out DIR [--views N] [--size S] [--test-fraction F]
                           [--texture IMG] [--specular K] [--seed N] [--points P] [--supersample S]

What is written, and how, is :mod:`viewer.compute.photoset`'s docstring. A one-line JSON summary
is printed.
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
    c.add_argument("--points", type=number_in(int, 1, 20_000_000), default=100_000,
                   help="points sampled on the surface into points.ply (with colours and the surface's normals), for "
                        "the point renderers (default 100000)")
    c.add_argument("--supersample", type=int, default=1,
                   help="S x S samples per pixel, averaged: anti-aliased photos with fractional alpha at the "
                        "silhouette, as a camera takes them (default 1: each pixel's centre)")
    HANDLERS["capture"] = _cmd_capture


def _cmd_capture(args: argparse.Namespace) -> int:
    summary = capture_dataset(args.mesh, args.out, views=args.views, size=args.size,
                              test_fraction=args.test_fraction, texture=args.texture,
                              specular=args.specular, seed=args.seed, points=args.points,
                              supersample=args.supersample)
    print(json.dumps(summary))
    return 0


