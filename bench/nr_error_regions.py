"""Where a renderer's held-out error lies: the rings of pixels along the silhouette, the interior,
the highlights, the background.

    .venv/bin/python bench/nr_error_regions.py CKPT [CKPT ...] --scene DIR [--split test] [--rings 3]

Each checkpoint (any renderer plugin's, as ``main.py evaluate`` reads them) draws the split's views
over the scene's background; the squared error of its 8-bit render against the photo (as
``evaluate`` scores it) is summed per region: ring k outside / inside the photo's silhouette (the
pixels k dilations out / k - 1 .. k erosions in of its alpha > 0.5), the rest of the object, the
brightest 3 % of the object (the highlights), the background. Printed per region: its share of
the total error, its pixels' share, the mean signed error of the grey level there (negative: drawn
darker than the photo) and the PSNR the views would have without that region's error. Also the
PSNR of the interior against the photo blurred by a Gaussian of sigma px: when that rises above
sigma 0, the renderer draws a blurred photo. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def regions(alpha: np.ndarray, gt: np.ndarray, rings: int) -> dict[str, np.ndarray]:
    """Boolean (V, H, W) masks of the regions named in the module docstring (they overlap only
    where the highlights lie in the interior)."""
    from scipy import ndimage

    fg = alpha > 0.5
    # grown[k] / shrunk[k]: k dilations / erosions of each view's mask, one more per step (scipy's
    # iterations=0 would mean "until nothing changes", so k = 0 is the mask itself)
    grown, shrunk = [fg], [fg]
    for _ in range(rings):
        grown.append(np.stack([ndimage.binary_dilation(m) for m in grown[-1]]))
        shrunk.append(np.stack([ndimage.binary_erosion(m) for m in shrunk[-1]]))
    out: dict[str, np.ndarray] = {}
    for k in range(1, rings + 1):
        out[f"ring {k} outside"] = grown[k] & ~grown[k - 1]
        out[f"ring {k} inside"] = shrunk[k - 1] & ~shrunk[k]
    out["interior"] = shrunk[rings]
    lum = gt.mean(-1)
    out["highlights (brightest 3 %)"] = fg & (lum > np.quantile(lum[fg], 0.97)) if fg.any() else fg
    out["background"] = ~grown[rings]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--scene", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--rings", type=int, default=3)
    args = ap.parse_args()

    from scipy import ndimage

    from viewer.analysis.images import psnr, to_uint8
    from viewer.cli.fit import _load_model
    from viewer.io.photosets import load_viewset

    scene = load_viewset(args.scene)
    frames = scene.split(args.split)
    gt = np.stack([f.rgb(scene.background) for f in frames]).astype(np.float64)
    alpha = np.stack([f.alpha for f in frames])
    masks = regions(alpha, gt, args.rings)
    inner = masks["interior"]
    sigmas = (0.5, 0.7, 1.0)
    blurred = {s: np.stack([np.stack([ndimage.gaussian_filter(g[..., c], s) for c in range(3)], -1) for g in gt])[inner]
               for s in sigmas}  # the photos' interiors blurred, once for every checkpoint
    for ck in args.checkpoints:
        plugin, model = _load_model(ck, "cpu")
        pred = np.stack([to_uint8(plugin.render(model, f.camera, scene.background)) for f in frames]) / 255.0
        diff = pred - gt
        se = (diff ** 2).mean(-1)
        total = se.sum()
        print(f"{ck} ({plugin.name}): PSNR {psnr(pred, gt):.2f} dB over {len(frames)} {args.split} views")
        for name, m in masks.items():
            part = se[m].sum()
            # the views with this region drawn as the photo is
            right = psnr(np.where(m[..., None], gt, pred), gt)
            print(f"  {name:28s} error {part / total:6.1%}  pixels {m.mean():6.1%}  signed {diff.mean(-1)[m].mean() if m.any() else 0:+.3f}"
                  f"  PSNR without it {right:.2f}")
        inside = psnr(pred[inner], gt[inner])
        for s in sigmas:
            print(f"  interior against the photo blurred by {s} px: {psnr(pred[inner], blurred[s]):.2f} dB"
                  f" (against the photo: {inside:.2f})")

if __name__ == "__main__":
    main()
