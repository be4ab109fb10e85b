"""The patch-training loop every segmenter shares: MONAI sampling and losses, validation Dice and
its preview. The budget, cancel, the weights kept and DistributedDataParallel under torchrun are
:class:`viewer.plugins.training.TrainingRun`'s."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import torch
from monai.losses import DiceCELoss

from viewer.jobs.progress import Cancelled, Progress
from viewer.plugins import Case
from viewer.plugins.precision import autocast, grad_scaler, precision_name
from viewer.plugins.training import TrainingRun

from .checkpoint import SegModel, save_checkpoint
from .data import label_table, mirror_axes, patch_sampler, prepare_case, slice_preview, target_spacing
from .infer import segment_array
from .preprocess import fit_normalisation

__all__ = ["train_segmenter", "dice_scores"]


def dice_scores(pred: np.ndarray, ref: np.ndarray, n_classes: int) -> list[float]:
    """Dice of classes 1..n-1 (1.0 when a class is absent from both)."""
    out = []
    for c in range(1, n_classes):
        a, b = pred == c, ref == c
        s = int(a.sum()) + int(b.sum())
        out.append(1.0 if s == 0 else 2.0 * int(np.logical_and(a, b).sum()) / s)
    return out


def _split(cases: list[Case], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    idx = list(range(len(cases)))
    if len(cases) < 2 or fraction <= 0:
        return idx, idx  # one case: validate on what we train on, and say so in the metrics
    rng = np.random.default_rng(seed)
    rng.shuffle(idx)
    n_val = min(len(cases) - 1, max(1, int(round(fraction * len(cases)))))
    return sorted(idx[n_val:]), sorted(idx[:n_val])


def train_segmenter(cases: list[Case], cfg: Any, progress: Progress, *, plugin: str,
                    build: Callable[[int, int, Any], torch.nn.Module],
                    checkpoint_dir: str | None = None, sources: list[dict] | None = None,
                    segment: Callable[..., tuple[np.ndarray, np.ndarray | None]] | None = None) -> SegModel:
    """Train ``build(in_channels, n_classes, cfg)`` on ``cases``; return the model kept.

    A network whose output is smaller than its input (unpadded convolutions: DeepMedic) says so
    with an int attribute ``context``, the voxels per side it reads beyond the voxels it predicts:
    the training windows are then ``patch_size + 2 * context`` of image around ``patch_size`` of
    labels. ``segment`` replaces :func:`~plugins._seg.infer.segment_array` (same signature) for
    validation: a method's own tiling of a whole volume.

    ``cfg`` fields used: patch_size, batch_size, learning_rate, max_epochs, iters_per_epoch,
    val_every, minutes, val_fraction, sw_batch_size, seed, device, amp, and if present
    overlap, sampling, affine_prob, mirror, val_share. Stops at the time budget, after ``max_epochs``, or
    on cancel (``progress``); with ``checkpoint_dir`` the kept checkpoint is on disk whenever
    training ends, however it ends (rank 0 writes it).

    Validation: with held-out cases, sliding-window Dice on them every ``val_every`` epochs, but
    never more than ``val_share`` of the time (a validation waits until the training since the
    last one is long enough), and the best validated weights are kept; the first held-out case's
    prediction is previewed (:func:`~plugins._seg.data.slice_preview`). With one case there is
    nothing held out: a sliding-window pass over the training volume would cost a large share of
    a short budget to say how well it fits what it trains on, so the Dice of the training patches
    themselves is reported (nearly free: the step's own logits, every 4th step, every 8th voxel),
    the latest weights are kept, and ``metrics["validation"]`` says "training data".
    """
    run = TrainingRun(progress, minutes=cfg.minutes, device=cfg.device, seed=cfg.seed,
                      max_steps=int(cfg.max_epochs) * int(cfg.iters_per_epoch), finished="epochs")
    device = run.device
    amp = bool(cfg.amp)  # reduced precision where the device has it natively (viewer.plugins.precision)
    np.random.seed(cfg.seed + run.rank)
    patch = (int(cfg.patch_size),) * 3

    progress.update(0, 0, "preparing data")
    labels, to_class = label_table(cases)
    if not labels:
        raise ValueError("the label volumes are empty: nothing to learn")
    n_classes = len(labels) + 1
    # built before the data: its context decides the training windows (nothing in between draws
    # from torch's generator, so the initial weights are those of a later build)
    net = build(1, n_classes, cfg).to(device)
    context = int(getattr(net, "context", 0))
    window = tuple(p + 2 * context for p in patch)
    segment = segment or segment_array
    modality = cases[0].image.modality or ""
    spacing = target_spacing(cases)
    train_idx, val_idx = _split(cases, cfg.val_fraction, cfg.seed)
    on_training_data = set(val_idx) <= set(train_idx)
    norm = fit_normalisation([cases[i].image.array for i in train_idx],
                             [cases[i].labels.array for i in train_idx], modality)
    sampling = str(getattr(cfg, "sampling", "posneg"))
    flips = mirror_axes([cases[i] for i in train_idx], to_class, str(getattr(cfg, "mirror", "all")))
    train_set = [prepare_case(cases[i], spacing, norm, to_class, window, balanced=sampling == "classes",
                              context=context, background=str(getattr(cfg, "background", "all")))
                 for i in train_idx]
    val_set = [] if on_training_data else [prepare_case(cases[i], spacing, norm, to_class, patch) for i in val_idx]
    sampler = patch_sampler(window, 2, cfg.seed + run.rank, n_classes=len(to_class) + 1, sampling=sampling,
                            affine_prob=float(getattr(cfg, "affine_prob", 0.0)), flip_axes=flips,
                            background_share=float(getattr(cfg, "background_share", 0.0)))

    step_net = run.parallel(net)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-5)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=bool(getattr(cfg, "batch_dice", False)))
    scaler = grad_scaler(device, amp)
    rng = np.random.default_rng(cfg.seed + 1000 * run.rank)

    config = asdict(cfg)
    config["mirror_axes"] = list(flips)  # prediction's flip test-time augmentation uses the same
    model = SegModel(net=net, plugin=plugin, config=config, labels=labels,
                     normalisation=norm.to_dict(), spacing=spacing, patch=patch, in_channels=1,
                     data=sources or [], device=device)
    run.choose_best = not on_training_data
    history: list[dict] = []
    epoch = 0
    overlap = np.zeros((2, n_classes))  # training-patch Dice of the epoch: intersections, sizes
    val_share = float(getattr(cfg, "val_share", 0.1))

    def validate() -> tuple[float, list[float]]:
        net.eval()
        scores = []
        for j, p in enumerate(val_set):
            lab, _ = segment(net, p.image[0], n_classes, patch, float(getattr(cfg, "overlap", 0.25)),
                             cfg.sw_batch_size, device=device, amp=amp)
            scores.append(dice_scores(lab, p.label[0], n_classes))
            if j == 0:
                progress.preview(slice_preview(p, lab, labels, spacing))
        net.train()
        per_label = np.mean(np.array(scores), axis=0).tolist()
        return float(np.mean(per_label)), per_label

    def write(entry: dict) -> None:
        """The kept checkpoint so far, on disk while training goes on (Ctrl-C or a crash keeps it)."""
        if checkpoint_dir:
            model.metrics = _metrics(run, history + [entry], entry["step"], entry["epoch"], entry["seconds"],
                                     "in progress", cases, val_idx, labels)
            save_checkpoint(model, checkpoint_dir, weights=run.kept_weights(net))

    base_lr = float(cfg.learning_rate)
    net.train()
    running, steps_in_epoch = 0.0, 0
    run.begin()
    with run.loop():
        while epoch < cfg.max_epochs:
            running, steps_in_epoch = 0.0, 0
            overlap[:] = 0
            for it in range(int(cfg.iters_per_epoch)):
                run.check()
                x, y = _batch(train_set, sampler, rng, int(cfg.batch_size), device, context)
                # poly decay over the run: by the clock under a budget, so that a short budget
                # still ends at a small learning rate (a step count would barely have begun)
                frac = run.fraction()
                for g in opt.param_groups:
                    g["lr"] = base_lr * (1.0 - frac) ** 0.9
                opt.zero_grad(set_to_none=True)
                with autocast(device, amp):
                    logits = step_net(x)
                # the loss in float32 (autocast ran only the network in reduced precision)
                logits = logits.float()
                loss = loss_fn(logits, y)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                run.step += 1
                running += float(loss.detach())
                steps_in_epoch += 1
                if on_training_data and it % 4 == 0:
                    # every 4th step, every 8th voxel: the whole argmax cost 9 % of a step
                    _count_overlap(logits.detach()[:, :, ::2, ::2, ::2], y[:, :, ::2, ::2, ::2], overlap)
                run.report(progress.update, frac * 1000, 1000, f"epoch {epoch + 1}, step {run.step}")
            epoch += 1
            entry = {"epoch": epoch, "step": run.step, "loss": running / cfg.iters_per_epoch,
                     "seconds": run.elapsed(), "lr": opt.param_groups[0]["lr"]}
            due = epoch % max(1, int(cfg.val_every)) == 0 or epoch == cfg.max_epochs
            if run.leader and on_training_data:
                per_label = _patch_dice(overlap)
                entry["val_dice"] = float(np.mean(per_label))
                run.keep(entry["val_dice"], net, epoch, per_label=per_label)
                if due:
                    write(entry)
            elif run.leader and due and run.validation_fits(val_share):
                with run.validation():
                    entry["val_dice"], per_label = validate()
                if run.keep(entry["val_dice"], net, epoch, per_label=per_label):
                    write(entry)
            history.append(entry)
            run.report(progress.metrics, run.step, **{k: v for k, v in entry.items() if k in ("loss", "val_dice")})
    if not history and steps_in_epoch:
        # the budget ended inside the first epoch: the curve still gets the steps taken
        entry = {"epoch": 0, "step": run.step, "loss": running / steps_in_epoch, "seconds": run.elapsed(),
                 "lr": opt.param_groups[0]["lr"]}
        history.append(entry)
        run.report(progress.metrics, run.step, loss=entry["loss"])
    if run.leader and on_training_data:
        score, per_label = run.best_score, run.best_info.get("per_label", [])
        if run.best_at is None or run.best_at < epoch or not per_label:  # no epoch closed: the steps so far
            per_label = _patch_dice(overlap) if run.step else []
            score = float(np.mean(per_label)) if per_label else float("nan")
        run.keep(score, net, epoch, force=True, per_label=per_label)  # the latest: nothing held out
    elif run.leader and run.best_at is None:
        # stopped before any validation: validate what we have, so the checkpoint says how good
        try:
            with run.validation():
                dice, per_label = validate()
        except Cancelled:
            dice, per_label = float("nan"), []
        run.keep(dice, net, epoch, force=True, per_label=per_label)
    run.restore(net)
    ddp = run.share_weights(net)
    model.metrics = {"ddp": ddp} if ddp is not None else {}
    model.metrics.update(_metrics(run, history, run.step, epoch, run.elapsed(), run.stopped_by, cases, val_idx,
                                  labels))
    model.metrics.update(validation_seconds=run.validation_seconds, validations=run.validations,
                         precision=precision_name(device, amp))
    if run.leader and checkpoint_dir:
        save_checkpoint(model, checkpoint_dir)
    net.eval()
    return model


def _batch(train_set: list, sampler: Any, rng: np.random.Generator, size: int,
           device: str, context: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` augmented patches of random training cases: images (B, 1, ...) float, labels long
    (with ``context``, only the centre of each window the network predicts)."""
    batch_x, batch_y = [], []
    while len(batch_x) < size:
        p = train_set[int(rng.integers(len(train_set)))]
        for d in sampler(p.sample_input()):
            batch_x.append(torch.as_tensor(np.asarray(d["image"])))
            batch_y.append(torch.as_tensor(np.asarray(d["label"])))
    y = torch.stack(batch_y[:size])
    if context:
        y = y[:, :, context:-context, context:-context, context:-context]
    return torch.stack(batch_x[:size]).float().to(device), y.long().to(device)


def _count_overlap(logits: torch.Tensor, y: torch.Tensor, acc: np.ndarray) -> None:
    """Add a batch's per-class intersections (acc[0]) and prediction + truth sizes (acc[1])."""
    n = logits.shape[1]
    pred = logits.argmax(1).flatten()
    truth = y[:, 0].flatten()
    same = torch.bincount(pred[pred == truth], minlength=n)
    sizes = torch.bincount(pred, minlength=n) + torch.bincount(truth, minlength=n)
    acc[0] += same[:n].cpu().numpy()
    acc[1] += sizes[:n].cpu().numpy()


def _patch_dice(acc: np.ndarray) -> list[float]:
    """Dice of classes 1..n-1 over the counted patches (1.0 where a class was in neither)."""
    return [1.0 if acc[1, c] == 0 else float(2 * acc[0, c] / acc[1, c]) for c in range(1, acc.shape[1])]


def _metrics(run: TrainingRun, history: list[dict], steps: int, epochs: int, seconds: float, stopped_by: str,
             cases: list[Case], val_idx: list[int], labels: list[dict]) -> dict:
    on_training = len(val_idx) == len(cases)  # _split holds at least one case out, or none
    per_label = run.best_info.get("per_label", [])
    return {
        "best_val_dice": run.best_score if run.best_at is not None else -1.0,
        "best_val_dice_per_label": {row["name"]: d for row, d in zip(labels, per_label)},
        "best_epoch": run.best_at or 0, "epochs": epochs, "steps": steps,
        "seconds": round(seconds, 1), "stopped_by": stopped_by,
        "validation_cases": [cases[i].name for i in val_idx],
        "validated_on_training_data": on_training,
        "validation": "training data" if on_training else "held-out cases",
        "validation_method": ("Dice of the training patches, latest weights kept (no case held out)" if on_training
                              else "sliding-window Dice of the held-out cases, best weights kept"),
        "history": history,
    }
