"""The reduced precision a network runs in, decided from the hardware.

A method's Config says whether mixed precision is wanted (``amp``, on by default); this module says
what that means on the device in hand:

- CUDA: float16 under autocast, with a gradient scaler (as nnU-Net and MONAI's examples do);
- a CPU with Intel AMX (Sapphire Rapids and later): bfloat16 under autocast. oneDNN multiplies
  bf16 tiles natively there: a 3D U-Net training step (MONAI ``UNet`` 16–256, 2 × 64³) took
  0.27 CPU s against 0.53 in float32 on one thread of this project's machines;
- any other CPU: float32. Without AMX, bf16 is emulated and slower than float32.

Weights, optimiser state and losses stay float32; only the network's forward runs reduced.
``LUCID3D_CPU_BF16=0`` (or ``1``) overrides the CPU detection, e.g. to compare the two.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager

import torch

__all__ = ["autocast", "autocast_dtype", "cpu_has_native_bf16", "grad_scaler", "precision_name"]


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AMX tiles), or ``LUCID3D_CPU_BF16=1``."""
    forced = os.environ.get("LUCID3D_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False  # oneDNN is what multiplies bf16 tiles; without it bf16 convolutions are slow
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, present since torch 2.3
    try:
        return bool(probe()) if probe is not None else False
    except Exception:  # a capability probe must never stop a training
        return False


def autocast_dtype(device: str, amp: bool = True) -> torch.dtype | None:
    """The autocast dtype for ``device`` ("cpu", "cuda", "cuda:N"), or None to stay in float32."""
    if not amp:
        return None
    if str(device).startswith("cuda"):
        return torch.float16
    if str(device) == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def autocast(device: str, amp: bool = True) -> AbstractContextManager:
    """``torch.autocast`` for :func:`autocast_dtype` (disabled when that is None)."""
    dtype = autocast_dtype(device, amp)
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return torch.autocast(device_type=kind, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def precision_name(device: str, amp: bool = True) -> str:
    """"float16", "bfloat16" or "float32": what a model's forward runs in (for its metrics)."""
    return str(autocast_dtype(device, amp) or torch.float32).removeprefix("torch.")


def grad_scaler(device: str, amp: bool = True) -> torch.amp.GradScaler:
    """The loss scaler float16 needs (its small gradients underflow); a pass-through otherwise
    (bfloat16 has float32's range)."""
    return torch.amp.GradScaler("cuda", enabled=autocast_dtype(device, amp) == torch.float16)
