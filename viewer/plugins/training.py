"""What every training loop shares, whatever it trains: the wall-clock budget and the step limit,
cancel (a click on Cancel, or Ctrl-C turned into one by the command line), the weights kept
(the best by a held-out score, or the latest when nothing is held out to choose by), and
DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPUs; rank 0 decides when every
rank stops, validates, writes, and every rank leaves with its weights).

A trainer builds one :class:`TrainingRun` and writes only its own step and validation::

    run = TrainingRun(progress, minutes=cfg.minutes, device=cfg.device, seed=cfg.seed, max_steps=N)
    net = build().to(run.device)
    step_net = run.parallel(net)          # DistributedDataParallel under torchrun
    run.choose_best = held_out_split      # else the latest weights are kept
    run.begin()
    with run.loop():                      # ends on Stop (budget, steps, cancel) or Cancelled
        while True:
            run.check()                   # rank 0's decision, on every rank
            ... one step of step_net ...; run.step += 1
            if run.leader and time_to_validate:
                with run.validation():    # timed: the next check keeps its length in reserve
                    score = ...
                if run.keep(score, net, at=run.step) and checkpoint_dir:
                    save(run.kept_weights(net))
    run.restore(net)
    ddp = run.share_weights(net)          # None on one process

torch is imported with this module, which only a training imports (never plugin discovery).
"""

from __future__ import annotations

import gc
import math
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist

from ..jobs.progress import Cancelled, Progress

__all__ = ["CLOCK", "clock", "distributed", "finish_distributed", "Stop", "TrainingRun"]

CLOCK: Callable[[], float] = time.monotonic


def clock() -> float:
    """Seconds for the time budget: the wall clock. A benchmark may set ``CLOCK`` to the process's
    CPU clock, so that a budget buys the same work whatever else the machine is running."""
    return CLOCK()


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when torchrun set the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and os.environ.get("LUCID3D_DEVICE", "cpu").startswith("cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def finish_distributed() -> None:
    """Leave the process group together: a rank that exits while another still talks to it makes
    gloo abort the other (SIGABRT). Call once, at the end of a process that trained."""
    if dist.is_available() and dist.is_initialized():
        # a DistributedDataParallel wrapper left in a reference cycle holds the group; freed only
        # at interpreter exit, after the group is gone, its gloo threads can abort the process
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


class Stop(Exception):
    """Leave the training loop; :attr:`TrainingRun.stopped_by` says why."""


_REASONS = {1: "time budget", 2: "cancelled", 3: "iterations"}


class TrainingRun:
    """One training's budget, ranks, stop decisions and kept weights (see the module docstring).

    Parameters
    ----------
    progress : the caller's Progress (its cancel is honoured; reports go through :meth:`report`).
    minutes : wall-clock budget (0 or less = none), counted from construction.
    device : "cpu", "cuda" or "cuda:N"; under torchrun on GPUs each rank takes its LOCAL_RANK.
    seed : seeds torch (the caller seeds its own samplers).
    max_steps : steps at most (None = no limit here: the caller's loop ends by itself).
    finished : ``stopped_by`` when the loop ends by itself ("iterations", "epochs").
    """

    def __init__(self, progress: Progress, *, minutes: float, device: str, seed: int,
                 max_steps: int | None = None, finished: str = "iterations") -> None:
        self.progress = progress
        self.rank, self.world = distributed()
        self.device = _rank_device(str(device), self.world)
        torch.manual_seed(seed)
        self.t0 = self.t_begin = clock()
        self.deadline = self.t0 + minutes * 60 if minutes and minutes > 0 else math.inf
        self.max_steps = max_steps
        self.step = 0
        self.stopped_by = finished
        # validations: the last one's length is kept in reserve before the deadline
        self.last_validation_s = self.validation_seconds = 0.0
        self.last_validation_end = self.t0
        self.validations = 0
        # the weights kept: the best by score (choose_best), else the latest (the network itself)
        self.choose_best = True
        self.best_score = -math.inf
        self.best_at: int | None = None
        self.best_info: dict[str, Any] = {}
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def leader(self) -> bool:
        """Rank 0: it validates, reports, writes and decides when every rank stops."""
        return self.rank == 0

    def elapsed(self) -> float:
        return clock() - self.t0

    def begin(self) -> None:
        """The training loop starts (the budget's share is counted from here). The long-lived
        tensors and modules stay out of Python's full collections, with no collection first: a
        full collection is itself a stall of the window's event loop."""
        gc.freeze()
        self.t_begin = self.last_validation_end = clock()

    def fraction(self) -> float:
        """Share of the run done, 0..1: by steps, or by the clock when that is further."""
        f = self.step / max(self.max_steps, 1) if self.max_steps else 0.0
        if math.isfinite(self.deadline):
            f = max(f, (clock() - self.t_begin) / max(self.deadline - self.t_begin, 1e-6))
        return min(f, 1.0)

    # stopping ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Raise :class:`Stop` on every rank when rank 0 says so: cancelled, the step limit
        reached, or the budget less the last validation's length spent. At least one step is
        made, however short the budget: set-up on a busy machine can take all of a few seconds,
        and a checkpoint of untrained weights helps no one."""
        want = 0
        if self.leader:
            want = (2 if self.progress.cancelled
                    else 3 if self.max_steps is not None and self.step >= self.max_steps
                    else 1 if self.step and clock() + self.last_validation_s >= self.deadline else 0)
        code = self._agree(want)
        if code:
            self.stopped_by = _REASONS[code]
            raise Stop

    def _agree(self, code: int) -> int:
        if self.world == 1:
            return code
        flag = torch.tensor([float(code)], device=self._collective_device())
        dist.broadcast(flag, 0)
        return int(flag.item())

    @contextmanager
    def loop(self) -> Iterator["TrainingRun"]:
        """The training loop's body: leaving it by :class:`Stop` or ``Cancelled`` is how it ends."""
        try:
            yield self
        except (Stop, Cancelled):
            if self.progress.cancelled and self.world == 1:
                self.stopped_by = "cancelled"

    def report(self, call: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        """A progress report from inside the loop, made by rank 0 only. It never raises
        Cancelled: a cancel is acted on at the next :meth:`check`, by every rank at the same step."""
        if not self.leader:
            return
        try:
            call(*args, **kwargs)
        except Cancelled:
            pass

    # validation and the weights kept -------------------------------------------------------------
    @contextmanager
    def validation(self) -> Iterator[None]:
        """Time one validation (``validations``, ``validation_seconds``, the reserve)."""
        start = clock()
        try:
            yield
        finally:
            self.last_validation_end = clock()
            self.last_validation_s = self.last_validation_end - start
            self.validation_seconds += self.last_validation_s
            self.validations += 1

    def validation_fits(self, share: float) -> bool:
        """True when the training since the last validation is long enough that validating now
        keeps validations within ``share`` of the time."""
        share = min(max(share, 0.01), 1.0)
        return clock() - self.last_validation_end >= self.last_validation_s * (1 - share) / share

    def keep(self, score: float, net: torch.nn.Module, at: int, *, force: bool = False, **info: Any) -> bool:
        """Offer ``net``'s current weights, scored ``score`` at step or epoch ``at``; True if they
        are now the kept ones. With ``choose_best`` they are copied when better than the best so
        far (or ``force``); without, the latest weights are kept: the network itself."""
        if self.choose_best and not force and not score > self.best_score:
            return False
        self.best_score, self.best_at, self.best_info = score, at, info
        self.best_state = ({k: v.detach().clone() for k, v in net.state_dict().items()}
                           if self.choose_best else None)
        return True

    def kept_weights(self, net: torch.nn.Module) -> Any:
        """What to write as the checkpoint: the best state dict, or the network itself."""
        return self.best_state if self.best_state is not None else net

    def restore(self, net: torch.nn.Module) -> None:
        """Put the kept weights back into ``net`` (rank 0; :meth:`share_weights` sends them on)."""
        if self.leader and self.best_state is not None:
            net.load_state_dict(self.best_state)

    # ranks ------------------------------------------------------------------------------------
    def parallel(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` for the training steps: wrapped in DistributedDataParallel under torchrun."""
        if self.world == 1:
            return net
        ids = [self.device] if self.device.startswith("cuda") else None
        return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)

    def share_weights(self, net: torch.nn.Module) -> dict[str, Any] | None:
        """Every rank leaves with rank 0's weights; what the metrics say of that (world size,
        backend, each rank's weight checksum, whether they agree), or None on one process."""
        if self.world == 1:
            return None
        for t in net.state_dict().values():
            dist.broadcast(t, 0)
        sums = torch.stack([t.detach().double().sum() for t in net.state_dict().values()])
        sums = sums.to(self._collective_device())
        gathered = [torch.zeros_like(sums) for _ in range(self.world)]
        dist.all_gather(gathered, sums)
        return {"world_size": self.world, "backend": dist.get_backend(),
                "checksums": [float(g.sum()) for g in gathered],
                "weights_identical": all(torch.equal(g, gathered[0]) for g in gathered)}

    def _collective_device(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"  # NCCL talks CUDA tensors only


def _rank_device(device: str, world: int) -> str:
    if device.startswith("cuda") and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    return device
