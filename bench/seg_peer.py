"""Benchmark: the app's 3D U-Net against a plain MONAI training loop, side by side, same run.

    .venv/bin/python bench/seg_peer.py [--sets mni-deep,phantom-small,phantom,mni] [--minutes 4]
    .venv/bin/python bench/seg_peer.py --sets frog            # the held-aside set, last
    .venv/bin/python bench/seg_peer.py --sets mni-deep --pair "ours:levels=4" ours   # an ablation
    .venv/bin/python bench/seg_peer.py --sets phantom,mni-deep --minutes 3 --pair ours deepmedic

For each data set two worker processes train AT THE SAME TIME, each with one torch thread, so on
a shared, noisy machine both see the same load (recorded: os.getloadavg() every 10 s while they
train, and their steps). By default the two are "ours" (the app's own `unet3d` plugin: its
`train` with the default Config, then its `predict`, flip test-time augmentation included) and
"peer", the plain recipe below. Any segmenter plugin can be a side by its name (``deepmedic``,
``deepmedic:patch_size=27``): its `train` with the default Config (plus overrides), then its
`predict` with its Config's `tta`, as "ours" ("ours" is ``unet3d``). ``peer:amp=true`` is the
plain recipe with its forward under bfloat16 autocast (what the precision alone gives it). Each side's inference
time per test case is recorded beside its Dice (`infer_seconds`: wall and CPU, one thread).
Both clocks start together (a file barrier) after the data set is
built, and the budget covers everything after that: preprocessing, training, any validation.
The test Dice is `viewer.analysis.metrics.dice_per_label` for both, on the test cases neither trained on.

The peer (a few dozen lines of MONAI a researcher writes in an afternoon, `peer_train`):
arrays in RAS voxel order (axis 0 = left-right), z-scored (MONAI `NormalizeIntensity`), padded
to one patch; `UNet` 16-32-64-128-256 (five levels), two residual units (MONAI's default
instance norm); `DiceCELoss`; 64³ `RandCropByPosNegLabeld` crops (pos 1, neg 1, two per step);
`RandFlipd` along left-right only; Adam 1e-3; no validation; then `sliding_window_inference`
(roi 64³, overlap 0.25, Gaussian blending) and argmax.

Data sets (all built on this machine, nothing downloaded; `viewer/datasets.py`):
* mni-deep       caudate, putamen, thalamus (5-10 mL each) on the 1 mm MNI152 T1, warped, with
                 bias and noise as another subject: train left hemisphere, test right.
* phantom-small  gallbladder, adrenal glands, pancreas-like body (1-5 mL) in a CT phantom at
                 1.5 x 1.5 x 2 mm: train on one phantom (seed 0), test on two others (100, 101).
* frog           HELD ASIDE (decided before any default was chosen, and not run until they
                 were): brain, eyes, heart, kidneys (2-5 mL per side) of pyvista's frog tissue
                 labels with synthetic MR-like intensities: train the frog's left side, test its
                 right.
* phantom        the abdominal CT phantom (liver, spleen, kidneys, bone): train seeds 0-3,
                 test 100, 101 (as bench/seg_train.py).
* mni            MNI152 grey/white matter at 2 mm: train left hemisphere, test right.

Results: bench/results/seg_peer[_TAG].json and .md (a markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETS = ("mni-deep", "phantom-small", "frog", "phantom", "mni")
WHAT = {"mni-deep": "caudate, putamen, thalamus; 1 mm T1; left -> right hemisphere",
        "phantom-small": "gallbladder, adrenals, pancreas; CT; one phantom -> two others",
        "frog": "frog brain, eyes, heart, kidneys; MR-like; left -> right side",
        "phantom": "liver, spleen, kidneys, bone; CT; 4 -> 2 phantoms",
        "mni": "grey/white matter; 2 mm T1; left -> right hemisphere"}
HELD_ASIDE = "frog"


def load_set(name: str):
    """(train cases, test cases) of a data set (see WHAT)."""
    from viewer.samples.datasets import frog_case, mni152_case, mni152_deep_case, phantom_case, phantom_cases, split_left_right

    if name == "mni-deep":
        left, right = split_left_right(mni152_deep_case(0))
        return [left], [right]
    if name == "frog":
        left, right = split_left_right(frog_case(0))
        return [left], [right]
    if name == "phantom-small":
        kw = dict(shape=(128, 128, 80), spacing=(1.5, 1.5, 2.0), small_organs=True)
        return [phantom_case(0, **kw)], [phantom_case(s, **kw) for s in (100, 101)]
    if name == "phantom":
        return phantom_cases(4, first_seed=0), phantom_cases(2, first_seed=100)
    if name == "mni":
        left, right = split_left_right(mni152_case(2))
        return [left], [right]
    raise SystemExit(f"unknown data set {name!r}; one of {', '.join(SETS)}")


# the peer ---------------------------------------------------------------------------------------
def _canonical(case, to_class=None):
    import numpy as np
    from monai.transforms import NormalizeIntensity

    from plugins._seg.preprocess import to_canonical

    img, _, _ = to_canonical(np.asarray(case.image.array, np.float32), case.image.affine)
    lab, _, _ = to_canonical(np.asarray(case.labels.array), case.labels.affine)
    img = np.asarray(NormalizeIntensity()(np.ascontiguousarray(img)))
    pad = [(0, max(0, 64 - n)) for n in img.shape]
    img = np.pad(img, pad, constant_values=float(img.min()))
    lab = np.pad(lab, pad)
    return img[None].astype(np.float32), lab[None].astype(np.int64)


def peer_train(train, n_classes: int, minutes: float, seed: int = 0, clock=time.monotonic, amp: bool = False):
    """The plain recipe; ``amp`` (side ``peer:amp=true``) runs its forward under bfloat16 autocast on
    the CPU, as ours does on CPUs with AMX: what the same loop gains from the precision alone."""
    import numpy as np
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import Compose, RandCropByPosNegLabeld, RandFlipd

    t0 = clock()
    torch.manual_seed(seed)
    data = [dict(zip(("image", "label"), _canonical(c))) for c in train]
    tf = Compose([RandCropByPosNegLabeld(["image", "label"], "label", (64, 64, 64), pos=1, neg=1, num_samples=2),
                  RandFlipd(["image", "label"], prob=0.5, spatial_axis=0)])
    tf.set_random_state(seed)
    net = UNet(3, 1, n_classes, (16, 32, 64, 128, 256), (2, 2, 2, 2), num_res_units=2)
    loss_fn, opt = DiceCELoss(to_onehot_y=True, softmax=True), torch.optim.Adam(net.parameters(), 1e-3)
    rng, steps = np.random.default_rng(seed), 0
    while clock() - t0 < minutes * 60:
        patches = tf(data[int(rng.integers(len(data)))])
        x = torch.stack([torch.as_tensor(p["image"]) for p in patches]).float()
        y = torch.stack([torch.as_tensor(p["label"]) for p in patches]).long()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = net(x)
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()
        steps += 1
    return net.eval(), steps


def peer_predict(net, case):
    import torch
    from monai.inferers import sliding_window_inference

    img, lab = _canonical(case)
    with torch.inference_mode():
        out = sliding_window_inference(torch.from_numpy(img)[None], (64, 64, 64), 4, net, overlap=0.25, mode="gaussian")
    return out[0].argmax(0).numpy(), lab[0]


# one side of a pair, in its own process --------------------------------------------------------
def _plugin_name(side: str) -> str:
    """The segmenter plugin a side names: "ours" is the app's U-Net, any other its plugin's name."""
    name = side.partition(":")[0]
    return "unet3d" if name == "ours" else name


def _overrides(spec: str) -> dict[str, str]:
    _, _, rest = spec.partition(":")
    return dict(kv.split("=", 1) for kv in rest.split(",") if kv)


def worker(args) -> None:
    import numpy as np
    import torch

    from viewer.jobs.progress import Progress
    from viewer.analysis.metrics import dice_per_label
    from viewer.cli.common import parse_setting
    from viewer.plugins import get_plugin

    torch.set_num_threads(1)
    if args.clock == "cpu":
        import viewer.plugins.training as training

        training.CLOCK = time.process_time  # this process's CPU seconds (one torch thread)
    train, test = load_set(args.dataset)
    values = [lab.value for lab in train[0].labels.table]
    names = {lab.value: lab.name for lab in train[0].labels.table}
    load = []
    Path(args.barrier, args.side_id).write_text("ready")
    while len(list(Path(args.barrier).iterdir())) < 2:
        time.sleep(0.05)
    done = threading.Event()

    def sample_load() -> None:
        while not done.wait(10.0 if load else 0.0):
            load.append(os.getloadavg()[0])

    threading.Thread(target=sample_load, daemon=True).start()
    clock = time.process_time if args.clock == "cpu" else time.monotonic
    t0, c0 = time.monotonic(), clock()
    res: dict = {"side": args.side, "threads": torch.get_num_threads(), "clock": args.clock}
    infer: list[tuple[float, float]] = []  # (wall, CPU) seconds per test case
    preds: list = []  # (prediction, reference, case) per test case, for --save-pred

    def timed(call):
        w, c = time.monotonic(), time.process_time()
        out = call()
        infer.append((time.monotonic() - w, time.process_time() - c))
        return out

    if _plugin_name(args.side) == "peer":
        amp = _overrides(args.side).get("amp", "false").lower() in ("1", "true", "yes", "on")
        net, steps = peer_train(train, len(values) + 1, args.minutes, seed=int(args.seed), clock=clock, amp=amp)
        train_s = time.monotonic() - t0
        done.set()
        scores = []
        for case in test:
            pred, ref = timed(lambda: peer_predict(net, case))
            scores.append(dice_per_label(pred, ref, values))
            preds.append((pred, ref, case))
        res.update(steps=steps, recipe="plain MONAI loop (see bench/seg_peer.py)")
    else:
        plugin = get_plugin(_plugin_name(args.side), "segmenter")
        cfg = plugin.Config(minutes=args.minutes, seed=int(args.seed))
        for key, value in _overrides(args.side).items():
            setattr(cfg, *parse_setting(cfg, f"{key}={value}", args.side))
        model = plugin.train(train, cfg, Progress())
        train_s = time.monotonic() - t0
        done.set()
        scores = []
        for case in test:
            pred, _ = timed(lambda: plugin.predict(model, case.image, Progress(),
                                                   tta=bool(model.config.get("tta", True))))
            scores.append(dice_per_label(np.asarray(pred.array), np.asarray(case.labels.array), values))
            preds.append((np.asarray(pred.array), np.asarray(case.labels.array), case))
        m = model.metrics
        res.update(steps=m["steps"], validation=m.get("validation"), train_patch_or_val_dice=m.get("best_val_dice"),
                   mirror_axes=model.config.get("mirror_axes"), config=model.config)
    per_label = {names[v]: float(np.mean([s[v] for s in scores])) for v in values}
    res.update(train_seconds=round(train_s, 1), train_clock_seconds=round(clock() - c0, 1), dice_per_label=per_label, dice_mean=float(np.mean(list(per_label.values()))),
               loadavg_1min=[round(x, 2) for x in load], loadavg_mean=round(float(np.mean(load)), 2) if load else None,
               eval_seconds=round(time.monotonic() - t0 - train_s, 1),
               infer_seconds={"wall": [round(w, 2) for w, _ in infer], "cpu": [round(c, 2) for _, c in infer]})
    Path(args.result).write_text(json.dumps(res))
    if args.save_pred:
        # the peer's arrays are in RAS voxel order (padded), ours on the scan's own grid: each with
        # its own reference, and the voxel size, so a post-processing can be scored offline
        out = Path(args.save_pred)
        out.mkdir(parents=True, exist_ok=True)
        for i, (pred, ref, case) in enumerate(preds):
            spacing = np.linalg.norm(np.asarray(case.image.affine)[:3, :3], axis=0)
            np.savez_compressed(out / f"{args.dataset}_{args.side_id}_{i}.npz", pred=pred, ref=ref,
                                spacing=spacing, values=np.array(values), side=args.side)


# the pair, side by side ------------------------------------------------------------------------
def run_pair(dataset: str, sides: list[str], minutes: float, clock: str, seed: int = 0,
             save_pred: str = "") -> dict:
    with tempfile.TemporaryDirectory(prefix="seg-peer-") as tmp:
        barrier = Path(tmp, "barrier")
        barrier.mkdir()
        procs = []
        for i, side in enumerate(sides):
            cmd = [sys.executable, __file__, "--worker", "--dataset", dataset, "--side", side, "--side-id", str(i),
                   "--minutes", str(minutes), "--clock", clock, "--seed", str(seed), "--barrier", str(barrier), "--result", str(Path(tmp, f"{i}.json"))]
            if save_pred:
                cmd += ["--save-pred", save_pred]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1")))
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a worker failed on {dataset} (exit {p.returncode})")
        keys = sides if len(set(sides)) == len(sides) else [f"{s} #{i}" for i, s in enumerate(sides)]
        return {k: json.loads(Path(tmp, f"{i}.json").read_text()) for i, k in enumerate(keys)}


def table(results: dict) -> str:
    rows = ["| data set | side | mean Dice | per label | steps | minutes | infer CPU s/case | threads | load avg (mean) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["sets"].items():
        mark = " (held aside)" if name == HELD_ASIDE else ""
        for side, s in r["sides"].items():
            labels = ", ".join(f"{k} {v:.3f}" for k, v in s["dice_per_label"].items())
            cpu = s.get("infer_seconds", {}).get("cpu") or []
            infer = f"{sum(cpu) / len(cpu):.1f}" if cpu else "-"
            rows.append(f"| {name}{mark} | {side} | **{s['dice_mean']:.3f}** | {labels} | {s['steps']} | "
                        f"{results['minutes']:g} | {infer} | {s['threads']} | {s['loadavg_mean']} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="mni-deep,phantom-small,phantom,mni")
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--pair", nargs=2, default=["ours", "peer"], metavar="SIDE",
                    help="two of: peer, ours (the U-Net), a segmenter plugin's name (deepmedic), each optionally "
                         "with :FIELD=VALUE,FIELD=VALUE (Config overrides)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="what the minutes count: each process's CPU time (default: the same work whatever "
                         "else runs on the machine) or the wall clock")
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed of both sides (sampling, initial weights); the data sets do not change")
    ap.add_argument("--save-pred", default="", metavar="DIR",
                    help="also write each side's test segmentations and references to DIR "
                         "(SET_SIDE_CASE.npz: pred, ref, spacing, values, side), e.g. to score a post-processing offline")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for hidden in ("--dataset", "--side", "--side-id", "--barrier", "--result"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    import torch

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
               "minutes": args.minutes, "clock": args.clock, "seed": args.seed, "pair": args.pair, "held_aside": HELD_ASIDE, "sets": {}}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = "seg_peer" + (f"_{args.tag}" if args.tag else "")
    for name in args.sets.split(","):
        t = time.monotonic()
        sides = run_pair(name, args.pair, args.minutes, args.clock, args.seed, args.save_pred)
        results["sets"][name] = {"what": WHAT[name], "sides": sides,
                                 "wall_seconds": round(time.monotonic() - t, 1)}
        summary = {side: (round(s["dice_mean"], 3), s["steps"]) for side, s in sides.items()}
        print(f"{name}: {summary}", flush=True)
        (out / f"{stem}.json").write_text(json.dumps(results, indent=1))
    (out / f"{stem}.md").write_text(table(results) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
