"""Training the heat-map U-Net: on patches around the boxes' ellipsoids (Dice + cross-entropy per
voxel), or on whole images by their labels alone (per-class log-sum-exp pooling, cross-entropy).
The budget, cancel, the weights kept and DDP are :class:`viewer.plugins.training.TrainingRun`'s."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from viewer.jobs.progress import Progress
from viewer.plugins import ImageCase
from viewer.plugins.training import TrainingRun

from .checkpoint import HeatModel, build_network, save_checkpoint
from .data import Prepared, ellipsoid_target, normalisation_for, prepare

__all__ = ["train_heatmap", "choose_mode", "roc_auc"]

MAX_WHOLE_VOXELS = 128**3  # labels mode trains on whole images (at most 128 per axis): beyond, crops or boxes
_WRITE_EVERY_S = 60.0  # the latest weights on disk at least this often (Ctrl-C or a crash keeps them)


def choose_mode(cases: list[ImageCase], mode: str, kind: str) -> tuple[str, list[str], str | None]:
    """(mode, classes, positive): "boxes" when asked or (auto) when every case has its boxes and
    the boxed cases are one class, the others another; else "labels". ValueError (one line) when
    the cases cannot be trained as asked."""
    classes = sorted({c.label for c in cases})
    boxed = [c for c in cases if c.boxes]
    said = all(c.boxes is not None for c in cases)
    boxed_labels = Counter(c.label for c in boxed)
    if kind == "detector":
        if not said:
            raise ValueError("a detector learns from boxes: every case needs its 'boxes' (an empty list for none)")
        if not boxed:
            raise ValueError("no case has a box: nothing to learn to find")
        return "boxes", classes if len(classes) > 1 else classes + ["none"], boxed_labels.most_common(1)[0][0]
    if len(classes) < 2:
        raise ValueError(f"one class only ({classes[0]!r}): nothing to tell apart")
    unboxed = {c.label for c in cases if not c.boxes}
    consistent = said and len(boxed_labels) == 1 and not (set(boxed_labels) & unboxed) and len(classes) == 2
    if mode == "boxes" and not consistent:
        raise ValueError("mode boxes: every case needs 'boxes', the boxed cases one class and the others the other")
    if mode == "boxes" or (mode == "auto" and consistent):
        return "boxes", classes, next(iter(boxed_labels))
    return "labels", classes, None


def roc_auc(scores: list[float], positive: list[bool]) -> float:
    """Area under the ROC curve (ties count half); NaN without both kinds of case."""
    s, y = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    return float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))


def _pad_to(a: np.ndarray, shape: tuple[int, ...], mode: str) -> np.ndarray:
    pad = [(0, max(0, s - n)) for n, s in zip(a.shape, shape)]
    return np.pad(a, pad, mode=mode) if any(p[1] for p in pad) else a


def _split(cases: list[ImageCase], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Held-out cases, drawn from every class alike; none when ``fraction`` is 0."""
    if fraction <= 0:
        return list(range(len(cases))), []
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({c.label for c in cases}):
        idx = [i for i, c in enumerate(cases) if c.label == label]
        rng.shuffle(idx)
        k = min(len(idx) - 1, int(round(fraction * len(idx))))
        val += idx[:k]
        train += idx[k:]
    return sorted(train), sorted(val)


def _prepare_all(cases: list[ImageCase], model: HeatModel, norm: Any, patch: int) -> list[Prepared]:
    out = []
    for c in cases:
        p = prepare(c.image, model.spacing, norm)
        if model.mode == "boxes":
            p.target = ellipsoid_target(p.image.shape, p.affine, c.boxes or [])
        p.klass = model.classes.index(c.label)
        out.append(p)
    if model.mode == "boxes":
        for p in out:  # every image at least one patch large
            p.image = _pad_to(p.image, (patch,) * 3, "edge")
            p.target = _pad_to(p.target, (patch,) * 3, "constant")
    else:
        # a DenseNet halves its input five times: 32 voxels per axis at least, in steps of 32
        step = 2 ** (int(model.config["levels"]) - 1) if model.network == "unet" else 32
        common = tuple(int(np.ceil(max(16, step, *(p.image.shape[a] for p in out)) / step) * step) for a in range(3))
        if int(np.prod(common)) > MAX_WHOLE_VOXELS or max(common) > 128:
            raise ValueError(f"labels alone: whole images are trained on, and {list(common)} voxels at "
                             f"{[round(s, 2) for s in model.spacing]} mm is too large; give boxes or smaller crops")
        for p in out:
            p.image = _pad_to(p.image, common, "edge")
    return out


def _patch(p: Prepared, patch: int, rng: np.random.Generator, on_box: bool) -> tuple[np.ndarray, np.ndarray]:
    shape = np.array(p.image.shape)
    hi = shape - patch
    if on_box and p.target is not None and p.target.any():
        fg = np.argwhere(p.target)
        v = fg[rng.integers(len(fg))]
        lo = np.maximum(v - patch + 1, 0)
        origin = np.array([rng.integers(lo[a], min(v[a], hi[a]) + 1) for a in range(3)])
    else:
        origin = np.array([rng.integers(0, hi[a] + 1) for a in range(3)])
    sl = tuple(slice(o, o + patch) for o in origin)
    return p.image[sl], p.target[sl]


def _augment(x: np.ndarray, y: np.ndarray | None, rng: np.random.Generator, swap: tuple[int, ...] = ()):
    """Mirror along any axis (lesions have no side), swap the axes of equal spacing (``swap``:
    a round lesion looks the same turned), and a small intensity scale and shift."""
    if len(swap) > 1:
        order = list(range(x.ndim))
        picked = list(swap)
        for a, b in zip(swap, rng.permutation(picked)):
            order[a] = int(b)
        x = np.transpose(x, order)
        y = np.transpose(y, order) if y is not None else None
    for a in range(3):
        if rng.random() < 0.5:
            x = np.flip(x, a)
            y = np.flip(y, a) if y is not None else None
    x = x * rng.uniform(0.9, 1.1) + rng.uniform(-0.1, 0.1)
    return np.ascontiguousarray(x, np.float32), (np.ascontiguousarray(y) if y is not None else None)


def _box_batch(train: list[Prepared], cfg: Any, rng: np.random.Generator, device: str, swap: tuple[int, ...]):
    xs, ys = [], []
    with_box = [p for p in train if p.target is not None and p.target.any()]
    for _ in range(int(cfg.batch_size)):
        on_box = bool(with_box) and rng.random() < float(cfg.lesion_share)
        p = with_box[rng.integers(len(with_box))] if on_box else train[rng.integers(len(train))]
        x, y = _augment(*_patch(p, int(cfg.patch_size), rng, on_box), rng, swap)
        xs.append(x)
        ys.append(y)
    return (torch.from_numpy(np.stack(xs))[:, None].to(device),
            torch.from_numpy(np.stack(ys).astype(np.float32))[:, None].to(device))


def _label_batch(train: list[Prepared], cfg: Any, rng: np.random.Generator, device: str, swap: tuple[int, ...]):
    picks = [train[rng.integers(len(train))] for _ in range(int(cfg.batch_size))]
    xs = [_augment(p.image, None, rng, swap if len(set(p.image.shape[a] for a in swap)) == 1 else ())[0]
          for p in picks]
    return torch.from_numpy(np.stack(xs))[:, None].to(device), torch.tensor([p.klass for p in picks], device=device)


def box_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per voxel + soft Dice over the whole batch (patches without a lesion leave
    the Dice defined: the batch holds lesions half the time)."""
    prob = torch.sigmoid(logits)
    dice = 1.0 - (2.0 * (prob * y).sum() + 1.0) / (prob.sum() + y.sum() + 1.0)
    return F.binary_cross_entropy_with_logits(logits, y) + dice


def label_loss(logits: torch.Tensor, klass: torch.Tensor) -> torch.Tensor:
    """Per-class smooth maximum (log-sum-exp over voxels, less log N) -> cross-entropy."""
    flat = logits.flatten(2)
    pooled = torch.logsumexp(flat, dim=2) - float(np.log(flat.shape[2]))
    return F.cross_entropy(pooled, klass)


def _validate(model: HeatModel, val: list[Prepared]) -> float:
    """AUC of the positive class's probability (boxes; with two classes), else accuracy."""
    from .infer import maps_of

    probs = [maps_of(model, p)[0] for p in val]
    if len(model.classes) == 2:
        k = model.classes.index(model.positive) if model.positive in model.classes else 1
        auc = roc_auc([pr[k] for pr in probs], [p.klass == k for p in val])
        if np.isfinite(auc):
            return auc
    return float(np.mean([int(np.argmax(pr)) == p.klass for pr, p in zip(probs, val)]))


def train_heatmap(cases: list[ImageCase], cfg: Any, progress: Progress, *, plugin: str, kind: str,
                  checkpoint_dir: str | None = None, sources: list[dict] | None = None,
                  network: str = "unet") -> HeatModel:
    """Train on ``cases``; return the model kept (the latest weights, or with held-out cases the
    best by their AUC). With ``checkpoint_dir`` the kept model is on disk whenever training ends.
    ``network="densenet121"``: labels alone, whole images, the network's logits themselves."""
    if not cases:
        raise ValueError("no cases to train on")
    mode, classes, positive = choose_mode(cases, "labels" if network != "unet" else str(cfg.mode), kind)
    run = TrainingRun(progress, minutes=cfg.minutes, device=cfg.device, seed=cfg.seed, max_steps=int(cfg.max_steps))
    device = run.device
    rng = np.random.default_rng(cfg.seed + 1000 * run.rank)
    progress.update(0, 0, "preparing data")
    # the median canonical spacing (R, A, S): each scan is resampled to it
    spacing = tuple(float(v) for v in np.median([_canonical_spacing(c.image.affine) for c in cases], axis=0))
    norm = normalisation_for(cases[0].image.modality)
    patch = int(cfg.patch_size)
    out_ch = 1 if mode == "boxes" else len(classes)
    config = asdict(cfg)
    net = build_network(out_ch, config, network).to(device)
    model = HeatModel(net=net, plugin=plugin, kind=kind, config=config, mode=mode, classes=classes, positive=positive,
                      normalisation=norm.to_dict(), spacing=spacing, patch=(patch,) * 3, network=network,
                      data=sources or [], device=device)
    train_idx, val_idx = _split(cases, float(cfg.val_fraction), int(cfg.seed))
    prepared = _prepare_all(cases, model, norm, patch)
    train = [prepared[i] for i in train_idx]
    val = [prepared[i] for i in val_idx]
    if mode == "labels":
        model.patch = tuple(int(s) for s in train[0].image.shape)  # whole images, one window
    swap = _equal_axes(spacing)
    step_net = run.parallel(net)
    opt = torch.optim.AdamW(net.parameters(), lr=float(cfg.learning_rate), weight_decay=1e-5)
    run.choose_best = bool(val)
    history: list[dict] = []
    running, count, last_write = 0.0, 0, run.elapsed()

    def write(status: str) -> None:
        if checkpoint_dir and run.leader:
            model.metrics = _metrics(run, history, status, mode, [cases[i].name for i in val_idx])
            save_checkpoint(model, checkpoint_dir, weights=run.kept_weights(net) if val else None)

    net.train()
    run.begin()
    with run.loop():
        while True:
            run.check()
            frac = run.fraction()
            for g in opt.param_groups:
                g["lr"] = float(cfg.learning_rate) * (1.0 - frac) ** 0.9
            if mode == "boxes":
                x, y = _box_batch(train, cfg, rng, device, swap)
                loss = box_loss(step_net(x), y)
            else:
                x, k = _label_batch(train, cfg, rng, device, swap)
                loss = label_loss(step_net(x), k) if network == "unet" else F.cross_entropy(step_net(x), k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run.step += 1
            running += float(loss.detach())
            count += 1
            run.report(progress.update, frac * 1000, 1000, f"step {run.step}, loss {running / count:.3f}")
            if run.step % 25 == 0:
                entry = {"step": run.step, "loss": running / count, "seconds": round(run.elapsed(), 1)}
                running, count = 0.0, 0
                if val and run.leader and run.step % int(cfg.val_every) == 0:
                    with run.validation():
                        net.eval()
                        entry["val_score"] = _validate(model, val)
                        net.train()
                    if run.keep(entry["val_score"], net, run.step):
                        write("in progress")
                history.append(entry)
                run.report(progress.metrics, run.step, **{k: v for k, v in entry.items() if k in ("loss", "val_score")})
                if not val and run.elapsed() - last_write >= _WRITE_EVERY_S:
                    write("in progress")
                    last_write = run.elapsed()
    if val and run.leader and run.best_at is None:
        net.eval()
        with run.validation():
            run.keep(_validate(model, val), net, run.step, force=True)
    run.restore(net)
    ddp = run.share_weights(net)
    net.eval()
    model.metrics = _metrics(run, history, run.stopped_by, mode, [cases[i].name for i in val_idx])
    if ddp is not None:
        model.metrics["ddp"] = ddp
    if checkpoint_dir and run.leader:
        save_checkpoint(model, checkpoint_dir)
    return model


def _equal_axes(spacing: tuple[float, ...]) -> tuple[int, ...]:
    """The largest group of axes whose spacings agree within 10 % (their swaps keep mm as mm)."""
    best: tuple[int, ...] = ()
    for a in range(3):
        group = tuple(b for b in range(3) if abs(spacing[b] / spacing[a] - 1) <= 0.1)
        best = group if len(group) > len(best) else best
    return best


def _canonical_spacing(affine: Any) -> np.ndarray:
    """Voxel size (mm) along the axes that run most towards R, A and S."""
    from plugins._seg.preprocess import to_canonical

    perm = to_canonical(np.zeros((1, 1, 1)), np.asarray(affine, float))[2].perm
    return np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0)[list(perm)]


def _metrics(run: TrainingRun, history: list[dict], stopped_by: str, mode: str, val_cases: list[str]) -> dict:
    return {"steps": run.step, "seconds": round(run.elapsed(), 1), "stopped_by": stopped_by, "mode": mode,
            "best_val_score": run.best_score if run.best_at is not None else None,
            "best_step": run.best_at, "validation_cases": val_cases,
            "validation": "held-out cases (AUC, best kept)" if val_cases else "none (all cases trained on, latest kept)",
            "validations": run.validations, "validation_seconds": round(run.validation_seconds, 1),
            "history": history}
