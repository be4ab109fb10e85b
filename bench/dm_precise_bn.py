"""Probe: DeepMedic's BatchNorm statistics re-estimated over many training segments (PreciseBN).

    .venv/bin/python bench/dm_precise_bn.py [--set phantom-small] [--minutes 3] [--seed 0] [--batches 25 100 400]

Trains the default DeepMedic on a bench set (``--minutes`` of this process's CPU time, one torch
thread), scores the test cases with the running statistics training left (an exponential average,
momentum 0.1, of the last ~20 two-segment batches), then, from the same weights, with every
BatchNorm's mean and variance averaged evenly over N batches drawn as training draws them
(class-balanced segments, the training flips): Wu & Johnson 2021, "Rethinking 'Batch' in
BatchNorm" (PreciseBN). Paired: the Dice differences are the statistics', not training noise.
(``bench/dm_bn_stats.py`` re-estimated them over inference's uniform tiles instead: worse.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="phantom-small")
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batches", type=int, nargs="+", default=[25, 100, 400])
    ap.add_argument("--model", default="deepmedic")
    args = ap.parse_args()

    import numpy as np
    import torch

    import viewer.plugins.training as training
    from plugins._seg.data import label_table, patch_sampler, prepare_case
    from plugins._seg.preprocess import Normalisation
    from plugins._seg.train import _batch
    from seg_peer import load_set
    from viewer.analysis.metrics import dice_per_label
    from viewer.jobs.progress import Progress
    from viewer.plugins import get_plugin

    torch.set_num_threads(1)
    training.CLOCK = time.process_time
    plugin = get_plugin(args.model, "segmenter")
    train, test = load_set(args.set)
    values = [lab.value for lab in train[0].labels.table]
    model = plugin.train(train, plugin.Config(minutes=args.minutes, seed=args.seed), Progress())
    print(f"{args.set} seed {args.seed}: {model.metrics.get('steps')} steps", flush=True)

    def score(tag: str) -> None:
        s = [dice_per_label(np.asarray(plugin.predict(model, c.image, Progress(), tta=True)[0].array),
                            np.asarray(c.labels.array), values) for c in test]
        per = {v: float(np.mean([x[v] for x in s])) for v in values}
        print(f"{tag:28s}", {v: round(d, 3) for v, d in per.items()}, f"mean {np.mean(list(per.values())):.4f}", flush=True)

    score("running (EMA) statistics:")
    cfg = model.config
    net = model.net
    context = int(getattr(net, "context", 0))
    window = tuple(p + 2 * context for p in model.patch)
    _, to_class = label_table(train)
    norm = Normalisation(**model.normalisation)
    prepared = [prepare_case(c, model.spacing, norm, to_class, window, balanced=True, context=context,
                             background=str(cfg.get("background", "all"))) for c in train]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for n in sorted(args.batches):
        sampler = patch_sampler(window, 2, 12345, n_classes=len(to_class) + 1, sampling=str(cfg.get("sampling", "classes")),
                                flip_axes=tuple(cfg.get("mirror_axes", ())), background_share=float(cfg.get("background_share", 0.0)))
        rng = np.random.default_rng(12345)
        for b in norms:
            b.reset_running_stats()
            b.momentum = None  # cumulative: every batch counts the same
        net.train()
        with torch.no_grad():
            for _ in range(n):
                x, _ = _batch(prepared, sampler, rng, int(cfg.get("batch_size", 2)), model.device, context)
                net(x)
        net.eval()
        score(f"averaged over {n} batches:")


if __name__ == "__main__":
    main()
