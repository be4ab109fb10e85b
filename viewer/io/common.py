"""Helpers every loader shares: memory guards, atomic writes, input checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..model.errors import LoadError

__all__ = ["available_memory", "check_fits_in_memory", "atomic_path", "require_file", "same_file"]


def available_memory() -> int:
    """Bytes of memory this process could still get (MemAvailable, else total physical)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def check_fits_in_memory(path: object, shape, dtype, factor: float = 1.0) -> None:
    """Refuse a header that claims more voxels than this machine can hold.

    ``factor`` is how many copies of the array the load needs at its peak.
    """
    try:
        n = int(np.prod([int(s) for s in shape], dtype=object))
        nbytes = n * np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError) as exc:
        raise LoadError(path, f"header has an invalid size or type: {exc}") from None
    if any(int(s) < 0 for s in shape):
        raise LoadError(path, f"header has a negative dimension {tuple(shape)}")
    if n == 0:
        raise LoadError(path, f"the image is empty (shape {tuple(int(s) for s in shape)})")
    need = nbytes * factor
    if need > available_memory():
        raise LoadError(
            path,
            f"header claims {tuple(int(s) for s in shape)} voxels of {np.dtype(dtype).name} "
            f"({nbytes / 2**30:.1f} GiB), more than the {available_memory() / 2**30:.1f} GiB "
            "of memory available",
        )


def require_file(path: Path) -> None:
    if not path.exists():
        raise LoadError(path, "no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise LoadError(path, "the file is empty")
    if not os.access(path, os.R_OK):
        raise LoadError(path, "permission denied")


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _umask() -> int:
    # os.umask can only be read by setting it; done once, at import, while no thread writes files
    return _UMASK


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, protect: list[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    A crash or an exception never leaves a half-written ``target``. ``protect`` lists input
    files that must never be overwritten (refused with a LoadError). The temporary name keeps
    the target's suffixes so format-by-extension writers still work.
    """
    target = Path(target)
    for p in protect:
        if same_file(Path(p), target):
            raise LoadError(target, "refusing to overwrite an input file")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise LoadError(target, f"the folder {parent} does not exist")
    suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".gz") else target.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".part" + suffix, dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file 0600; the result should have the mode any new file gets
        # (0666 less the umask), as if it had been written directly
        try:
            os.chmod(tmp_path, 0o666 & ~_umask())
        except OSError:
            pass
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
