"""Data-parallel training under torchrun: two CPU processes (gloo), one checkpoint.

``python -m torch.distributed.run --standalone --nproc_per_node 2 main.py train-segmenter ...``
must finish by its time budget (every rank stops at the same step: rank 0 broadcasts the stop
flag), write one checkpoint (rank 0), and record in its metrics that both ranks ended with the
same weights (rank 0 gathers a checksum of every rank's final weights).

A cancel on rank 0 must stop every rank at the same step as well (known bug, see
``test_cancel_on_rank_0_stops_every_rank``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from plugins.unet3d import PLUGIN
from tests.conftest import ROOT, headless_env
from viewer.samples.demo import ct_phantom
from viewer.jobs.progress import Progress

SHAPE, SPACING = (48, 48, 32), (4.0, 4.0, 6.0)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    args = []
    for s in (0, 1):
        vol, lab = ct_phantom(SHAPE, SPACING, seed=s)
        img, seg = tmp_path / f"ct{s}.nii.gz", tmp_path / f"ct{s}_seg.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(vol.array), vol.affine), str(img))
        nib.save(nib.Nifti1Image(np.asarray(lab.array), lab.affine), str(seg))
        args += ["--image", str(img), "--label", str(seg)]
    out = tmp_path / "ckpt"
    env = headless_env()
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "main.py"), "train-segmenter", *args, "--out", str(out), "--minutes", "0.3",
           "--patch", "32", "--iters-per-epoch", "4", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-4000:]
    summaries = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(summaries) == 1, r.stdout  # rank 0 alone reports
    summary = summaries[0]
    assert summary["stopped_by"] == "time budget"
    ddp = summary["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo"
    assert ddp["weights_identical"] is True
    assert len(ddp["checksums"]) == 2 and ddp["checksums"][0] == ddp["checksums"][1]

    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["metrics"]["ddp"]["world_size"] == 2
    assert cfg["metrics"]["ddp"]["weights_identical"] is True
    assert cfg["metrics"]["stopped_by"] == "time budget" and cfg["metrics"]["steps"] > 0
    # the checkpoint is an ordinary one: it loads in a single process and segments
    model = PLUGIN.load(out)
    vol, _ = ct_phantom(SHAPE, SPACING, seed=2)
    labels, _ = PLUGIN.predict(model, vol, Progress(), tta=False)
    assert labels.shape == SHAPE
    np.testing.assert_array_equal(labels.affine, vol.affine)


def _cancel_worker(rank: int, port: int, folder: str) -> None:
    """One rank of a 2-process gloo job whose rank 0 is cancelled from its metrics callback,
    the way a click on Cancel (or Ctrl-C) lands while a step or a validation runs."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    import torch

    from viewer.plugins import Case

    torch.set_num_threads(1)
    cases = [Case(*ct_phantom(SHAPE, SPACING, seed=s), name=f"p{s}") for s in (0, 1)]
    cfg = PLUGIN.Config(patch_size=32, base_channels=4, levels=2, res_units=1, batch_size=1, iters_per_epoch=3,
                        val_every=1, max_epochs=50, minutes=0, val_fraction=0.5, tta=False)

    def on_metrics(step, values):
        if rank == 0 and len(progress.history) >= 1:
            progress.cancel()

    progress = Progress(on_metrics=on_metrics)
    model = PLUGIN.train(cases, cfg, progress, checkpoint_dir=str(Path(folder) / "ckpt") if rank == 0 else None)
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(
        {k: model.metrics.get(k) for k in ("stopped_by", "steps", "ddp")}))
    from viewer.plugins.training import finish_distributed

    finish_distributed()


@pytest.mark.slow
def test_cancel_on_rank_0_stops_every_rank(tmp_path):
    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.start_processes(_cancel_worker, args=(port, str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 120
    try:
        while not ctx.join(timeout=1):
            assert time.monotonic() < deadline, "the ranks deadlocked"
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["stopped_by"] for r in ranks] == ["cancelled", "cancelled"]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 3
    assert ranks[0]["ddp"]["weights_identical"] is True
    assert json.loads((tmp_path / "ckpt" / "config.json").read_text())["metrics"]["stopped_by"] == "cancelled"


@pytest.mark.slow
@pytest.mark.parametrize("command, model", [
    ("train-classifier", "heatmap3d"), ("train-classifier", "densenet3d"), ("train-detector", "heatmap3d-detector"),
])
def test_torchrun_trains_classifiers_and_detectors(tmp_path, command, model):
    """The lesion methods train data-parallel as the segmenters do: two gloo processes, the same
    weights on both at the end, one checkpoint (rank 0) that loads and answers in one process."""
    from viewer.plugins import get_plugin
    from viewer.samples.lesions import TEST_SEED, write_lesion_set

    cases = write_lesion_set(tmp_path / "train", 4, 0, crop=16, contrast=(80.0, 100.0))
    test = write_lesion_set(tmp_path / "test", 1, TEST_SEED, crop=16, contrast=(80.0, 100.0))
    out = tmp_path / "ckpt"
    env = headless_env()
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "main.py"), command, "--cases", str(cases), "--out", str(out), "--model", model,
           "--steps", "6", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr[-4000:]
    summaries = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert len(summaries) == 1, r.stdout  # rank 0 alone reports
    ddp = summaries[0]["ddp"]
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["weights_identical"] is True
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["metrics"]["ddp"]["weights_identical"] is True
    kind = "detector" if command == "train-detector" else "classifier"
    plugin = get_plugin(model, kind)
    trained = plugin.load(out)
    from viewer.io import load_path

    vol = load_path(sorted(test.parent.glob("*.nii.gz"))[0])
    if kind == "classifier":
        out = plugin.classify(trained, vol)
        assert abs(sum(out["probabilities"].values()) - 1.0) < 1e-4
    else:
        assert all(len(b["box"]) == 6 for b in plugin.detect(trained, vol, min_score=0.0))
