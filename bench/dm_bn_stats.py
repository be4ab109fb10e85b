"""Probe: are DeepMedic's BatchNorm running statistics the cause of its phantom-small misses?

    .venv/bin/python bench/dm_bn_stats.py [--minutes 9] [--checkpoint DIR]

Trains the default DeepMedic on phantom-small's training phantom (``--minutes`` of this
process's CPU time, one torch thread; or loads ``--checkpoint`` if it holds one), scores the two
test phantoms with the statistics the training segments gave (class-balanced), then again after
re-estimating every BatchNorm's running mean and variance over the tiles inference draws (uniform
over the training volume, no flips). Prints per-label Dice for both. Measured 2026-12-02: 0.436
with the training statistics, 0.207 re-estimated (docs/PERFORMANCE.md): the training statistics
are the right ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--checkpoint", default="")
    args = ap.parse_args()

    import numpy as np
    import torch

    import viewer.plugins.training as training
    from plugins.deepmedic import PLUGIN
    from seg_peer import load_set
    from viewer.analysis.metrics import dice_per_label
    from viewer.jobs.progress import Progress

    torch.set_num_threads(1)
    training.CLOCK = time.process_time
    train, test = load_set("phantom-small")
    values = [lab.value for lab in train[0].labels.table]
    ck = Path(args.checkpoint or tempfile.mkdtemp(prefix="dm-bn-"))
    if not (ck / "config.json").exists():
        ck.mkdir(parents=True, exist_ok=True)
        model = PLUGIN.train(train, PLUGIN.Config(minutes=args.minutes, seed=0), Progress(), checkpoint_dir=ck)
        print(f"trained: {model.metrics.get('steps')} steps, checkpoint {ck}", flush=True)
    model = PLUGIN.load(ck)

    def score(tag: str) -> None:
        s = [dice_per_label(np.asarray(PLUGIN.predict(model, c.image, Progress(), tta=True)[0].array),
                            np.asarray(c.labels.array), values) for c in test]
        per = {v: float(np.mean([x[v] for x in s])) for v in values}
        print(tag, {v: round(d, 3) for v, d in per.items()}, f"mean {np.mean(list(per.values())):.3f}", flush=True)

    score("training statistics:")
    norms = [m for m in model.net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for b in norms:  # cumulative averages over every tile; `predict` calls eval(), so pin training mode
        b.reset_running_stats()
        b.momentum = None
        b.training = True
        b.train = lambda mode=True, b=b: b
    with torch.no_grad():
        PLUGIN.predict(model, train[0].image, Progress(), tta=False)
    for b in norms:
        del b.train
        b.training = False
    score("re-estimated over inference tiles:")


if __name__ == "__main__":
    main()
