"""Probe: connected-component post-processing of segmentations, scored offline and paired.

    .venv/bin/python bench/seg_peer.py --sets S --minutes 3 --seed N --save-pred DIR   # first
    .venv/bin/python bench/seg_components.py DIR [DIR ...]

Every saved test segmentation (``SET_SIDE_CASE.npz``) is scored as it is and after each rule,
per label, with 26-connected components (volumes in mL from the voxel size); removed voxels
become background. The same prediction under every rule, so the differences are the rule's
alone (no training noise). Rules (nnU-Net removes all but the largest component when that helps
on validation; with one training volume there is no validation, so the training labels decide):

* ``largest``: keep each label's largest component.
* ``rel f``: drop components smaller than f x the label's largest predicted one.
* ``train f``: drop components smaller than f x the smallest component a training case has
  (components under 10 % of their case's label, annotation specks, do not count).
* ``ktrain``: keep as many components as the most any training case has (same 10 % rule).

Prints, per directory, data set, side and rule: the mean Dice and its change from "none".
"""
import glob
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from viewer.analysis.metrics import dice_per_label  # noqa: E402

S26 = np.ones((3, 3, 3), bool)
_train_cache = {}

def train_stats(dataset):
    if dataset in _train_cache: return _train_cache[dataset]
    from seg_peer import load_set
    train, _ = load_set(dataset)
    st = {}
    for c in train:
        lab = np.asarray(c.labels.array); vox = float(np.prod(np.linalg.norm(np.asarray(c.labels.affine)[:3, :3], axis=0))) / 1000
        for v in np.unique(lab):
            if v == 0: continue
            cc, n = ndimage.label(lab == v, S26)
            sizes = np.sort(np.bincount(cc.ravel())[1:])[::-1] * vox
            st.setdefault(int(v), []).append(sizes)
    _train_cache[dataset] = st
    return st

def apply(pred, values, rule, vox, stats):
    out = pred.copy()
    for v in values:
        m = pred == v
        if not m.any(): continue
        cc, n = ndimage.label(m, S26)
        if n <= 1: continue
        sizes = np.bincount(cc.ravel())[1:] * vox
        if rule[0] == "largest":
            keep = np.zeros(n, bool); keep[np.argmax(sizes)] = True
        elif rule[0] == "rel":  # drop components under f x the largest predicted one
            keep = sizes >= rule[1] * sizes.max()
        elif rule[0] == "train":  # drop components under f x the smallest training component (>= 10% of its case's label)
            mins = []
            for s in stats.get(int(v), []):
                real = s[s >= 0.1 * s.sum()]
                mins.append(real.min())
            keep = sizes >= rule[1] * min(mins)
            if not keep.any(): keep[np.argmax(sizes)] = True
        elif rule[0] == "ktrain":  # keep as many components as the most a training case had (>=10% of label)
            k = max(int((s >= 0.1 * s.sum()).sum()) for s in stats.get(int(v), []))
            keep = np.zeros(n, bool); keep[np.argsort(sizes)[::-1][:k]] = True
        out[(~keep[cc - 1]) & m] = 0
    return out

RULES = [("none",), ("largest",), ("rel", 0.05), ("rel", 0.1), ("rel", 0.25), ("train", 0.1), ("train", 0.25), ("train", 0.5), ("ktrain",)]

def main(dirs: list[str]) -> None:
    rows = {}
    for d in dirs:
        for f in sorted(glob.glob(f"{d}/*.npz")):
            z = np.load(f, allow_pickle=False)
            dataset = Path(f).stem.rsplit("_", 2)[0]
            side = str(z["side"]); values = [int(v) for v in z["values"]]
            vox = float(np.prod(z["spacing"])) / 1000
            st = train_stats(dataset)
            for rule in RULES:
                p = z["pred"] if rule[0] == "none" else apply(z["pred"], values, rule, vox, st)
                d_ = dice_per_label(p, z["ref"], values)
                rows.setdefault((d, dataset, side, rule), []).append(np.mean([d_[v] for v in values]))
    for (d, ds, side, rule), vals in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], str(kv[0][3]))):
        base = np.mean(rows[(d, ds, side, ("none",))])
        print(f"{Path(d).name:14s} {ds:14s} {side:28s} {str(rule):18s} {np.mean(vals):.4f}  {np.mean(vals)-base:+.4f}")

if __name__ == "__main__":
    main(sys.argv[1:])
