"""The patch-training loop every segmenter shares: MONAI sampling and losses, a wall-clock budget,
validation Dice, the best checkpoint kept, cancel and Ctrl-C honoured, DistributedDataParallel
when started by torchrun (gloo on CPU, NCCL on GPUs)."""

from __future__ import annotations

import copy
import gc
import os
import time
from dataclasses import asdict
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from monai.losses import DiceCELoss

from viewer.jobs.progress import Cancelled, Progress
from viewer.plugins import Case

from plugins._dist import distributed, finish_distributed

from .checkpoint import SegModel, save_checkpoint
from .data import label_table, mirror_axes, patch_sampler, prepare_case, target_spacing
from .infer import segment_array
from .preprocess import fit_normalisation

__all__ = ["train_segmenter", "dice_scores", "distributed", "finish_distributed"]


def clock() -> float:
    """Seconds for the time budget: the wall clock. bench/seg_peer.py swaps in the process's CPU
    clock (``CLOCK``) so that a budget buys the same work whatever else the machine is running."""
    return CLOCK()


CLOCK = time.monotonic


class _Stop(Exception):
    """Leave the training loop: time budget reached or cancelled."""


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
                    checkpoint_dir: str | None = None, sources: list[dict] | None = None) -> SegModel:
    """Train ``build(in_channels, n_classes, cfg)`` on ``cases``; return the model kept.

    ``cfg`` fields used: patch_size, batch_size, learning_rate, max_epochs, iters_per_epoch,
    val_every, minutes, val_fraction, overlap, sw_batch_size, seed, device, amp, and if present
    sampling, affine_prob, mirror, val_share. Stops at the time budget, after ``max_epochs``, or
    on cancel (``progress``); with ``checkpoint_dir`` the kept checkpoint is on disk whenever
    training ends, however it ends.

    Validation: with held-out cases, sliding-window Dice on them every ``val_every`` epochs, but
    never more than ``val_share`` of the time (a validation waits until the training since the
    last one is long enough), and the best validated weights are kept. With one case there is
    nothing held out: a sliding-window pass over the training volume would cost a large share of
    a short budget to say how well it fits what it trains on, so the Dice of the training patches
    themselves is reported (nearly free: the step's own logits, every 4th step, every 8th voxel),
    the latest weights are kept, and ``metrics["validation"]`` says "training data".
    """
    rank, world = distributed()
    device = str(cfg.device)
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    amp = bool(cfg.amp) and device.startswith("cuda")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed + rank)
    patch = (int(cfg.patch_size),) * 3
    t0 = clock()
    deadline = t0 + cfg.minutes * 60 if cfg.minutes and cfg.minutes > 0 else float("inf")

    progress.update(0, 0, "preparing data")
    labels, to_class = label_table(cases)
    if not labels:
        raise ValueError("the label volumes are empty: nothing to learn")
    n_classes = len(labels) + 1
    modality = cases[0].image.modality or ""
    spacing = target_spacing(cases)
    train_idx, val_idx = _split(cases, cfg.val_fraction, cfg.seed)
    on_training_data = set(val_idx) <= set(train_idx)
    norm = fit_normalisation([cases[i].image.array for i in train_idx],
                             [cases[i].labels.array for i in train_idx], modality)
    sampling = str(getattr(cfg, "sampling", "posneg"))
    flips = mirror_axes([cases[i] for i in train_idx], to_class, str(getattr(cfg, "mirror", "all")))
    train_set = [prepare_case(cases[i], spacing, norm, to_class, patch, balanced=sampling == "classes")
                 for i in train_idx]
    val_set = [] if on_training_data else [prepare_case(cases[i], spacing, norm, to_class, patch) for i in val_idx]
    sampler = patch_sampler(patch, 2, cfg.seed + rank, n_classes=len(to_class) + 1, sampling=sampling,
                            affine_prob=float(getattr(cfg, "affine_prob", 0.0)), flip_axes=flips)

    net = build(1, n_classes, cfg).to(device)
    model_net: torch.nn.Module = net
    if world > 1:
        model_net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.startswith("cuda") else None)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=1e-5)
    total_steps = int(cfg.max_epochs) * int(cfg.iters_per_epoch)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    rng = np.random.default_rng(cfg.seed + 1000 * rank)

    config = asdict(cfg)
    config["mirror_axes"] = list(flips)  # prediction's flip test-time augmentation uses the same
    model = SegModel(net=net, plugin=plugin, config=config, labels=labels,
                     normalisation=norm.to_dict(), spacing=spacing, patch=patch, in_channels=1,
                     data=sources or [], device=device)
    best = {"dice": -1.0, "state": None, "per_label": [], "epoch": 0}
    history: list[dict] = []
    step, epoch, last_val_s, last_val_end = 0, 0, 0.0, clock()
    val_share = min(max(float(getattr(cfg, "val_share", 0.1)), 0.01), 1.0)
    spent = {"validation_seconds": 0.0, "validations": 0}
    stop_reason = "epochs"
    t_train = clock()
    # the long-lived tensors and modules stay out of Python's full collections (no collect first:
    # a full collection here is itself a stall of the window's event loop)
    gc.freeze()

    def validate() -> tuple[float, list[float]]:
        net.eval()
        scores = []
        for j, p in enumerate(val_set):
            lab, _ = segment_array(net, p.image[0], n_classes, patch, cfg.overlap, cfg.sw_batch_size,
                                   device=device, amp=amp)
            scores.append(dice_scores(lab, p.label[0], n_classes))
            if j == 0:
                progress.preview({"case": p.name, "labels": lab})
        net.train()
        per_label = np.mean(np.array(scores), axis=0).tolist()
        return float(np.mean(per_label)), per_label

    def stop_now(code: int) -> int:
        """0 = go on, 1 = time budget, 2 = cancelled: rank 0's decision, on every rank."""
        if world == 1:
            return code
        flag = torch.tensor([float(code)], device=device if device.startswith("cuda") else "cpu")
        dist.broadcast(flag, 0)
        return int(flag.item())

    def report(call, *args, **kwargs) -> None:
        """Progress reports inside the loop never raise Cancelled: a cancel is acted on at the
        next stop_now(), by every rank at the same step."""
        try:
            call(*args, **kwargs)
        except Cancelled:
            pass

    def progress_fraction() -> float:
        """Share of the run done: by steps, or by the clock when there is a budget."""
        frac = step / max(total_steps, 1)
        if deadline < float("inf"):
            frac = max(frac, (clock() - t_train) / max(deadline - t_train, 1e-6))
        return min(frac, 1.0)

    base_lr = float(cfg.learning_rate)
    net.train()
    try:
        while epoch < cfg.max_epochs:
            running = 0.0
            overlap = np.zeros((2, n_classes))  # training-patch Dice: intersections, sizes
            for it in range(int(cfg.iters_per_epoch)):
                reserve = last_val_s if rank == 0 else 0.0
                want = 0
                if rank == 0:
                    # at least one step, however short the budget: set-up on a busy machine can
                    # take all of a few seconds, and a checkpoint of untrained weights helps no one
                    want = 2 if progress.cancelled else 1 if step and clock() + reserve >= deadline else 0
                code = stop_now(want)
                if code:
                    stop_reason = "cancelled" if code == 2 else "time budget"
                    raise _Stop
                batch_x, batch_y = [], []
                while len(batch_x) < cfg.batch_size:
                    p = train_set[int(rng.integers(len(train_set)))]
                    for d in sampler(p.sample_input()):
                        batch_x.append(torch.as_tensor(np.asarray(d["image"])))
                        batch_y.append(torch.as_tensor(np.asarray(d["label"])))
                x = torch.stack(batch_x[: cfg.batch_size]).float().to(device)
                y = torch.stack(batch_y[: cfg.batch_size]).long().to(device)
                # poly decay over the run: by the clock under a budget, so that a short budget
                # still ends at a small learning rate (a step count would barely have begun)
                frac = progress_fraction()
                for g in opt.param_groups:
                    g["lr"] = base_lr * (1.0 - frac) ** 0.9
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
                    logits = model_net(x)
                    loss = loss_fn(logits, y)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                step += 1
                running += float(loss.detach())
                if on_training_data and it % 4 == 0:
                    # every 4th step, every 8th voxel: the whole argmax cost 9 % of a step
                    _count_overlap(logits.detach()[:, :, ::2, ::2, ::2], y[:, :, ::2, ::2, ::2], overlap)
                if rank == 0:
                    report(progress.update, frac * 1000, 1000, f"epoch {epoch + 1}, step {step}")
            epoch += 1
            entry = {"epoch": epoch, "step": step, "loss": running / cfg.iters_per_epoch,
                     "seconds": clock() - t0, "lr": opt.param_groups[0]["lr"]}
            due = epoch % max(1, int(cfg.val_every)) == 0 or epoch == cfg.max_epochs
            if rank == 0 and on_training_data:
                per_label = _patch_dice(overlap)
                entry["val_dice"] = float(np.mean(per_label))
                best.update(dice=entry["val_dice"], state=None, per_label=per_label, epoch=epoch)
                if due:
                    _write(model, dict(best, state=net.state_dict()), history + [entry], checkpoint_dir, cases, val_idx)
            elif rank == 0 and due and clock() - last_val_end >= last_val_s * (1 - val_share) / val_share:
                tv = clock()
                dice, per_label = validate()
                last_val_end = clock()
                last_val_s = last_val_end - tv
                spent["validation_seconds"] += last_val_s
                spent["validations"] += 1
                entry["val_dice"] = dice
                if dice > best["dice"]:
                    best.update(dice=dice, state=copy.deepcopy(net.state_dict()), per_label=per_label, epoch=epoch)
                    _write(model, best, history + [entry], checkpoint_dir, cases, val_idx)
            history.append(entry)
            if rank == 0:
                report(progress.metrics, step, **{k: v for k, v in entry.items() if k in ("loss", "val_dice")})
    except (_Stop, Cancelled):
        if progress.cancelled and world == 1:
            stop_reason = "cancelled"
    if rank == 0 and on_training_data:
        if best["epoch"] < epoch or not best["per_label"]:  # no epoch closed: the steps made so far
            per_label = _patch_dice(overlap) if step else []
            best.update(dice=float(np.mean(per_label)) if per_label else float("nan"), per_label=per_label)
        best.update(state=None, epoch=epoch)  # the latest weights: nothing held out to choose by
    elif rank == 0 and best["state"] is None:
        # stopped before any validation: validate what we have, so the checkpoint says how good
        try:
            tv = clock()
            dice, per_label = validate()
            spent["validation_seconds"] += clock() - tv
            spent["validations"] += 1
        except Cancelled:
            dice, per_label = float("nan"), []
        best.update(dice=dice, state=copy.deepcopy(net.state_dict()), per_label=per_label, epoch=epoch)
    if rank == 0 and best["state"] is not None:
        net.load_state_dict(best["state"])
    if world > 1:
        for t in net.state_dict().values():
            dist.broadcast(t, 0)  # every rank leaves with rank 0's weights
        sums = _checksum(net)
        gathered = [torch.zeros_like(sums) for _ in range(world)]
        dist.all_gather(gathered, sums)
        model.metrics["ddp"] = {"world_size": world, "backend": dist.get_backend(),
                                "checksums": [float(g.sum()) for g in gathered],
                                "weights_identical": all(torch.equal(g, gathered[0]) for g in gathered)}
    model.metrics.update(_metrics(best, history, step, epoch, t0, stop_reason, cases, val_idx, labels))
    model.metrics.update(spent)
    if rank == 0 and checkpoint_dir:
        save_checkpoint(model, checkpoint_dir)
    net.eval()
    return model


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


def _checksum(net: torch.nn.Module) -> torch.Tensor:
    return torch.stack([t.detach().double().sum() for t in net.state_dict().values() if t.is_floating_point()]).cpu()


def _metrics(best, history, step, epoch, t0, stop_reason, cases, val_idx, labels) -> dict:
    on_training = len(val_idx) == len(cases)  # _split holds at least one case out, or none
    return {
        "best_val_dice": best["dice"],
        "best_val_dice_per_label": {row["name"]: d for row, d in zip(labels, best["per_label"])},
        "best_epoch": best["epoch"], "epochs": epoch, "steps": step,
        "seconds": round(clock() - t0, 1), "stopped_by": stop_reason,
        "validation_cases": [cases[i].name for i in val_idx],
        "validated_on_training_data": on_training,
        "validation": "training data" if on_training else "held-out cases",
        "validation_method": ("Dice of the training patches, latest weights kept (no case held out)" if on_training
                              else "sliding-window Dice of the held-out cases, best weights kept"),
        "history": history,
    }


def _write(model, best, history, directory, cases, val_idx) -> None:
    """The best checkpoint so far, on disk while training goes on (Ctrl-C or a crash keeps it)."""
    if not directory:
        return
    live = copy.copy(model)
    net = copy.deepcopy(model.net)
    net.load_state_dict(best["state"])
    live.net = net
    live.metrics = _metrics(best, history, history[-1]["step"], history[-1]["epoch"],
                            clock() - history[-1]["seconds"], "in progress", cases, val_idx, model.labels)
    save_checkpoint(live, directory)
