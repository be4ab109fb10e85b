"""Checkpoint folders every method writes the same way: ``model.safetensors`` + ``config.json``.

Writing: the weights first, then the config, each to a temporary file renamed into place
(``viewer.io.common.atomic_path``), the config naming the weights' SHA-256 as its last key, so a
crash never leaves a pair that loads as if whole. Reading: regular files only (never a FIFO),
bounded sizes, the weights' hash against the config, the tensor names and shapes in the weights'
header against the network the config describes (built on torch's 'meta' device), and safetensors
only (no pickle). A method adds its own files (a mesh, ...) and its config's schema.

torch and safetensors are imported inside the functions that need them: :func:`sha256_file` and
:func:`stored_config` serve light callers (the command line hashing its inputs, a plugin asking
whether a folder is its own).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from ..model.errors import LoadError

__all__ = ["WEIGHTS", "CONFIG", "MAX_WEIGHTS_BYTES", "sha256_file", "stored_config", "write_checkpoint",
           "load_weights"]

WEIGHTS, CONFIG = "model.safetensors", "config.json"
# a weights file larger than this is not a checkpoint's (every network a Config's bounds allow is
# far smaller); refused before hashing, which would read all of it
MAX_WEIGHTS_BYTES = 16 << 30


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file, or of a folder's regular files (a DICOM series) read one after
    another in sorted path order."""
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def stored_config(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint's config.json as a dict, or None (missing, a FIFO, too large, not JSON, not
    an object): for questions such as "is this folder mine?" that must not raise."""
    from .config import read_checkpoint_json

    try:
        cfg = read_checkpoint_json(Path(folder) / CONFIG)
    except LoadError:
        return None
    return cfg if isinstance(cfg, dict) else None


def _state_dict(net_or_state: Any) -> dict[str, Any]:
    """CPU, contiguous tensors of a module (the inner one of a DistributedDataParallel) or of a
    state dict."""
    state = net_or_state
    if hasattr(state, "state_dict"):
        state = (state.module if hasattr(state, "module") else state).state_dict()
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def write_checkpoint(directory: str | os.PathLike, weights: Any, config: Mapping[str, Any], *,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``weights`` (a module or a state dict) and ``config`` into ``directory`` (made if missing).

    The stored config is ``config`` with ``weights_sha256`` appended; ``metadata`` goes into the
    safetensors header. Returns the folder.
    """
    from safetensors.torch import save_file

    from ..io.common import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = _state_dict(weights)
    path = directory / WEIGHTS
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=dict(metadata or {}))
    cfg = {**config, "weights_sha256": sha256_file(path)}
    with atomic_path(directory / CONFIG) as tmp:
        tmp.write_text(json.dumps(cfg, indent=1))
    return directory


def load_weights(directory: str | os.PathLike, config: Mapping[str, Any], build: Callable[[], Any],
                 device: str = "cpu") -> Any:
    """The network ``build()`` makes, with the weights of ``directory``, on ``device``, in eval mode.

    ``config`` is the folder's checked config.json (its ``weights_sha256`` names the weights).
    Raises LoadError (one line, naming the file) for weights that are missing, not a regular
    file, too large, truncated or altered (hash), unreadable as safetensors, or of another network
    than ``build`` makes (names and shapes, checked in the header before anything is allocated).
    """
    from safetensors.torch import load_file

    from ..io.common import require_regular_file
    from .config import check_weights_fit

    directory = Path(directory)
    weights, cfg_path = directory / WEIGHTS, directory / CONFIG
    if not weights.exists() and not weights.is_symlink():
        raise LoadError(weights, "missing: the checkpoint is incomplete")
    size = require_regular_file(weights)
    if size > MAX_WEIGHTS_BYTES:
        raise LoadError(weights, f"{size >> 30} GB of weights is not a checkpoint's (at most {MAX_WEIGHTS_BYTES >> 30})")
    if config.get("weights_sha256") != sha256_file(weights):
        raise LoadError(weights, "the weights file is truncated or does not belong to this config")
    try:
        check_weights_fit(weights, build)
    except ValueError as exc:
        raise LoadError(cfg_path, f"the weights do not fit the network it describes: {exc}") from None
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise LoadError(weights, f"unreadable weights ({' '.join(str(exc).split())})") from None
    net = build()
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise LoadError(weights, "the weights do not fit the network in config.json "
                                 f"({str(exc).splitlines()[0]})") from None
    return net.to(device).eval()
