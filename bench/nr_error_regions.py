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


def psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else float(10 * np.log10(1.0 / mse))


def regions(alpha: np.ndarray, gt: np.ndarray, rings: int) -> dict[str, np.ndarray]:
    """Boolean (V, H, W) masks of the regions named in the module docstring (they overlap only
    where the highlights lie in the interior)."""
    from scipy import ndimage

    fg = alpha > 0.5

    def grow(m, k):  # k dilations (k = 0: the mask itself; scipy's iterations=0 means "until stable")
        return m if k == 0 else ndimage.binary_dilation(m, iterations=k)

    def shrink(m, k):
        return m if k == 0 else ndimage.binary_erosion(m, iterations=k)

    out: dict[str, np.ndarray] = {}
    for k in range(1, rings + 1):
        out[f"ring {k} outside"] = np.stack([grow(m, k) & ~grow(m, k - 1) for m in fg])
        out[f"ring {k} inside"] = np.stack([shrink(m, k - 1) & ~shrink(m, k) for m in fg])
    interior = np.stack([shrink(m, rings) for m in fg])
    out["interior"] = interior
    lum = gt.mean(-1)
    out["highlights (brightest 3 %)"] = fg & (lum > np.quantile(lum[fg], 0.97)) if fg.any() else fg
    out["background"] = ~np.stack([grow(m, rings) for m in fg])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--scene", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--rings", type=int, default=3)
    args = ap.parse_args()

    from scipy import ndimage

    from viewer.analysis.images import to_uint8
    from viewer.cli.fit import _load_model
    from viewer.io.photosets import load_viewset

    scene = load_viewset(args.scene)
    frames = scene.split(args.split)
    gt = np.stack([f.rgb(scene.background) for f in frames]).astype(np.float64)
    alpha = np.stack([f.alpha for f in frames])
    masks = regions(alpha, gt, args.rings)
    inner = masks["interior"]
    for ck in args.checkpoints:
        plugin, model = _load_model(ck, "cpu")
        pred = np.stack([to_uint8(plugin.render(model, f.camera, scene.background)) for f in frames]) / 255.0
        diff = pred - gt
        se = (diff ** 2).mean(-1)
        total = se.sum()
        print(f"{ck} ({plugin.name}): PSNR {psnr(se.mean()):.2f} dB over {len(frames)} {args.split} views")
        for name, m in masks.items():
            part = se[m].sum()
            print(f"  {name:28s} error {part / total:6.1%}  pixels {m.mean():6.1%}  signed {diff.mean(-1)[m].mean() if m.any() else 0:+.3f}"
                  f"  PSNR without it {psnr((total - part) / se.size):.2f}")
        for sigma in (0.5, 0.7, 1.0):
            blurred = np.stack([np.stack([ndimage.gaussian_filter(g[..., c], sigma) for c in range(3)], -1) for g in gt])
            print(f"  interior against the photo blurred by {sigma} px: {psnr(((pred - blurred) ** 2)[inner].mean()):.2f} dB"
                  f" (against the photo: {psnr(((pred - gt) ** 2)[inner].mean()):.2f})")


if __name__ == "__main__":
    main()
