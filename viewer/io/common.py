"""Helpers every loader shares: memory guards, atomic writes, input checks."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from ..model.errors import LoadError

__all__ = ["available_memory", "check_fits_in_memory", "atomic_path", "require_file", "same_file",
           "require_regular_file", "check_claim_fits_file", "note_outside_file", "MAX_DEFLATE_RATIO",
           "open_image_header"]

# zlib/gzip cannot expand data by more than about 1032:1 (RFC 1951 worst case for long runs);
# bzip2 reaches higher ratios on runs, so it gets a looser bound
MAX_DEFLATE_RATIO = 1100
MAX_BZIP2_RATIO = 50_000


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
    """Refuse what cannot be opened as input: missing, empty, unreadable, or a device/FIFO/socket.

    Folders pass (a DICOM series or a photo set); anything else must be a regular file,
    because opening a FIFO or a character device blocks for ever or yields endless bytes.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoadError(path, "no such file or folder") from None
    except OSError as exc:
        raise LoadError(path, f"cannot open it ({exc.strerror or exc})") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise LoadError(path, f"not a regular file ({_kind_of_mode(st.st_mode)}): refusing to read it")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise LoadError(path, "the file is empty")
    if not os.access(path, os.R_OK):
        raise LoadError(path, "permission denied")


def _kind_of_mode(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def require_regular_file(path: str | os.PathLike, owner: object = None, what: str = "file") -> int:
    """Check that ``path`` is a readable regular file and return its size in bytes.

    For files a header refers to (a detached data file, a texture, a photo): ``owner`` is the
    file the user opened, named in the error so the message points at what they chose, and
    ``what`` says what the referenced file is for ("data file", "texture", ...).
    """
    path = Path(path)
    shown = owner if owner is not None else path
    prefix = "" if owner is None else f"its {what} {path}: "
    try:
        st = path.stat()
    except FileNotFoundError:
        raise LoadError(shown, f"{prefix}no such file" if owner is not None else "no such file") from None
    except OSError as exc:
        raise LoadError(shown, f"{prefix}cannot open it ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise LoadError(shown, f"{prefix}not a regular file ({_kind_of_mode(st.st_mode)}): refusing to read it")
    if not os.access(path, os.R_OK):
        raise LoadError(shown, f"{prefix}permission denied")
    return int(st.st_size)


def check_claim_fits_file(path: object, need_bytes: int, file_bytes: int, *,
                          compression: str | None = None, what: str = "header") -> None:
    """Refuse a header whose array needs more bytes than the file behind it can hold.

    ``need_bytes`` is what the declared shape and type take; ``file_bytes`` the size of the
    file (or the bytes left after the header). Uncompressed data must be there byte for byte;
    compressed data can expand only so far (deflate ~1032:1), so a 400-byte file that claims
    gigabytes is refused before anything is allocated.
    """
    if compression is None:
        limit = file_bytes
    else:
        ratio = MAX_BZIP2_RATIO if compression == "bzip2" else MAX_DEFLATE_RATIO
        limit = file_bytes * ratio + 1024
    if need_bytes > limit:
        held = f"{file_bytes} bytes" + (f" of {compression} data" if compression else "")
        raise LoadError(path, f"{what} claims {_human(need_bytes)} of data but the file holds only {held}")


def _human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def note_outside_file(meta: dict, opened: Path, referenced: Path) -> None:
    """Record in ``meta['outside_files']`` a file a header pulled in from outside its folder.

    Headers (detached NRRD/MHD data, OBJ materials and textures, photo paths) may name any
    file; the layer's info lists those that are not in or under the opened file's folder, so
    a user sees what was read on their behalf.
    """
    try:
        base = Path(opened).resolve().parent
        ref = Path(referenced).resolve()
    except OSError:
        return
    if base == ref.parent or base in ref.parents:
        return
    files = meta.setdefault("outside_files", [])
    if str(ref) not in files:
        files.append(str(ref))


def open_image_header(path: str | os.PathLike, owner: object = None, what: str = "image"):
    """Open an image with Pillow reading only its header (``.size`` and ``.mode``, no pixels).

    The file must be a regular file (a FIFO would block for ever). An image above Pillow's
    ``MAX_IMAGE_PIXELS`` (~89 M pixels) is refused with a LoadError instead of Pillow's
    DecompressionBombWarning on stderr (or its error above twice that). ``owner`` and ``what``
    are as for :func:`require_regular_file`. The caller closes the image (``with``).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    require_regular_file(path, owner, what)
    shown = owner if owner is not None else path
    prefix = "" if owner is None else f"its {what} {path}: "
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        size = re.search(r"\((\d+) pixels\)", str(exc))
        px = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
        raise LoadError(shown, f"{prefix}the image has {px}, more than the {Image.MAX_IMAGE_PIXELS:,} "
                               "allowed (possible decompression bomb)") from None
    except UnidentifiedImageError:
        raise LoadError(shown, f"{prefix}cannot read the {what} (not an image format Pillow knows)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise LoadError(shown, f"{prefix}cannot read the {what} ({type(exc).__name__}: {exc})") from None
    return im


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
