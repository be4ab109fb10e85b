"""Helpers every loader shares: memory guards, atomic writes, input checks."""

from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from ..model.errors import LoadError

__all__ = ["available_memory", "cgroup_room", "check_fits_in_memory", "atomic_path", "require_file", "same_file",
           "require_regular_file", "check_claim_fits_file", "note_outside_file", "MAX_DEFLATE_RATIO",
           "open_image_header", "quiet_pillow"]

# zlib/gzip cannot expand data by more than about 1032:1 (RFC 1951 worst case for long runs);
# bzip2 reaches higher ratios on runs, so it gets a looser bound
MAX_DEFLATE_RATIO = 1100
MAX_BZIP2_RATIO = 50_000


def available_memory() -> int:
    """Bytes of memory this process could still get.

    What the system has available (psutil: MemAvailable on Linux, the available pages on macOS
    and Windows, where total memory or a guess was all the standard library gives), capped by
    the room left under a Linux cgroup's memory limit: inside a container or a systemd slice the
    limit, not the machine, decides when the kernel kills us.
    """
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - no psutil, or a platform it cannot read: the fallbacks below
        avail = _meminfo_available()
    room = cgroup_room()
    return avail if room is None else min(avail, room)


def _meminfo_available() -> int:
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


def cgroup_room(root: str | os.PathLike = "/sys/fs/cgroup", membership: str | os.PathLike = "/proc/self/cgroup"
                ) -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 ``memory.max``, or v1
    ``memory.limit_in_bytes``) minus the cgroup's usage, or None where no limit applies or none
    can be read. The files of the process's own cgroup (``membership``) are read, else those at
    the root of ``root`` (a container sees its own cgroup there)."""
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        lines = []
    v2, v1 = "/", "/"
    for line in lines:
        num, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if num == "0" and controllers == "":
            v2 = path or "/"
        elif "memory" in controllers.split(","):
            v1 = path or "/"
    base = Path(root)
    candidates = [(base / v2.lstrip("/"), "memory.max", "memory.current"), (base, "memory.max", "memory.current"),
                  (base / "memory" / v1.lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes"),
                  (base / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes")]
    for folder, limit_name, usage_name in candidates:
        try:
            limit_text = (folder / limit_name).read_text().strip()
            usage = int((folder / usage_name).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit_text == "max":
            return None
        try:
            limit = int(limit_text)
        except ValueError:
            continue
        if limit >= 1 << 60:  # cgroup v1's "no limit" is a page-rounded 2^63
            return None
        return max(0, limit - usage)
    return None


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


_PILLOW_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_pillow() -> Iterator[None]:
    """Pillow's warnings kept off stderr (odd metadata is not the user's error), except its
    decompression-bomb warning, which is raised as an error. ``warnings`` filters are
    process-wide, so the loaders' Pillow calls take one lock: two threads' ``catch_warnings``
    would otherwise restore each other's filters."""
    import warnings

    from PIL import Image

    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_image_header(path: str | os.PathLike, owner: object = None, what: str = "image"):
    """Open an image with Pillow reading only its header (``.size`` and ``.mode``, no pixels).

    The file must be a regular file (a FIFO would block for ever). An image above Pillow's
    ``MAX_IMAGE_PIXELS`` (~89 M pixels) is refused with a LoadError instead of Pillow's
    DecompressionBombWarning on stderr (or its error above twice that). ``owner`` and ``what``
    are as for :func:`require_regular_file`. The caller closes the image (``with``).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    require_regular_file(path, owner, what)
    shown = owner if owner is not None else path
    prefix = "" if owner is None else f"its {what} {path}: "
    try:
        with quiet_pillow():
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


# --- bounded reading of compressed data and quiet native libraries (volume loaders) -----------
__all__ += ["inflate_exactly", "native_stderr_captured", "skip_lines"]

_CHUNK = 1 << 20


def _decompressor(compression: str):
    import bz2
    import zlib

    if compression == "bzip2":
        return bz2.BZ2Decompressor()
    # 32 + MAX_WBITS: a zlib or a gzip header, whichever the stream has (MetaIO writes zlib,
    # NRRD and .nii.gz gzip)
    return zlib.decompressobj(32 + zlib.MAX_WBITS)


def inflate_exactly(fh, want: int, compression: str, path: object, *, keep: bool = True,
                    skip: int = 0, whole: bool = True) -> bytearray | None:
    """Decompress ``want`` bytes (after dropping ``skip`` decompressed bytes) from ``fh``.

    Never produces more than ``skip + want`` bytes, whatever the stream would expand to (a
    decompression bomb costs no memory), reads the compressed input 1 MiB at a time, follows
    concatenated gzip members, and turns a corrupt stream or one that ends early into a
    LoadError naming ``path``. ``keep=False`` only validates (the bytes are counted, not kept).
    ``whole=True`` also reads the stream to its end marker, so its checksum (gzip CRC-32,
    zlib Adler-32) is verified: a flipped byte can decode to wrong voxels without any other
    error, and a stream holding more than the header says is refused too. ``whole=False``
    (the first frame of a 4D file) stops after ``want`` bytes.

    Parameters
    ----------
    fh : binary file positioned at the first compressed byte.
    want : decompressed bytes the header says the data takes.
    compression : "gzip" (zlib or gzip framing) or "bzip2".
    """
    import zlib

    out = bytearray(want) if keep else None
    got = -skip  # bytes still to drop are counted as negative
    dec = _decompressor(compression)
    pending = b""
    drained = False  # the file is read to its end
    while got < want:
        if not pending and not drained and (compression != "bzip2" or dec.needs_input):
            pending = fh.read(_CHUNK)
            drained = not pending
        try:
            # at most 4 MiB out per call: 1 MiB of zeros in could be a GiB out
            limit = min(want - got, 4 * _CHUNK)
            if compression == "bzip2":
                piece = dec.decompress(pending, max_length=limit)
                pending = b""
            else:
                piece = dec.decompress(pending, limit)
                pending = dec.unconsumed_tail
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise LoadError(path, f"the compressed data is corrupt ({exc})") from None
        if piece:
            start = max(got, 0)
            got += len(piece)
            if keep and got > 0:
                out[start:got] = piece[len(piece) - (got - start):]
        if dec.eof:
            pending = dec.unused_data + pending
            if got < want and pending:
                dec = _decompressor(compression)  # another gzip member / bzip2 stream follows
                continue
            if got < want:
                break
        elif drained and not piece:
            break  # input used up, stream unfinished: truncated
    if got >= want and whole:
        _check_stream_end(dec, fh, pending, path)
    if got < want:
        have = max(got, 0)
        raise LoadError(path, f"the compressed data ends after {have} bytes, but the header needs "
                              f"{skip + want} (truncated or corrupt)")
    return out


def _check_stream_end(dec, fh, pending: bytes, path: object) -> None:
    """Decode past the last wanted byte to the end marker, where the checksum is checked."""
    import zlib

    while not dec.eof:
        if not pending and getattr(dec, "needs_input", True):
            pending = fh.read(_CHUNK)
            if not pending:
                raise LoadError(path, "the compressed data ends before its checksum (truncated)")
        try:
            if hasattr(dec, "unconsumed_tail"):
                extra = dec.decompress(pending, 1)
                pending = dec.unconsumed_tail
            else:
                extra = dec.decompress(pending, max_length=1)
                pending = b""
        except (zlib.error, OSError, EOFError, ValueError) as exc:
            raise LoadError(path, f"the compressed data is corrupt ({exc})") from None
        if extra:
            raise LoadError(path, "the compressed data holds more bytes than the header says "
                                  "(corrupt, or a wrong size or type in the header)")


def skip_lines(fh, n: int, path: object, what: str = "line skip") -> None:
    """Move ``fh`` past ``n`` newline-terminated lines, reading at most the file once.

    Refuses (LoadError) when the file has fewer lines: a header's ``line skip: 2000000000``
    then fails after one pass over the file instead of two billion empty reads.
    """
    if n < 0:
        raise LoadError(path, f"{what} {n} is negative")
    left = n
    while left:
        pos = fh.tell()
        block = fh.read(_CHUNK)
        if not block:
            raise LoadError(path, f"{what} {n} passes the end of the data file ({n - left} lines there)")
        count = block.count(b"\n")
        if count < left:
            left -= count
            continue
        idx = -1
        for _ in range(left):
            idx = block.index(b"\n", idx + 1)
        fh.seek(pos + idx + 1)
        left = 0


_STDERR_LOCK = __import__("threading").Lock()


@contextlib.contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Send what native code writes on file descriptor 2 to a list instead of the terminal.

    ITK's MetaIO prints its reasons ("Uncompress failed", "data not read completely") with
    ``std::cerr`` and no switch turns that off; the loaders keep it out of the CLI's one-line
    errors and use it as the reason instead. The yielded list gets the captured lines when
    the block ends. One capture at a time (fd 2 is process-wide).
    """
    import sys

    lines: list[str] = []
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (a detached GUI): nothing to capture
            yield lines
            return
        sink = tempfile.TemporaryFile()
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield lines
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read(64 * 1024).decode("utf-8", "replace")
                lines.extend(line.strip() for line in text.splitlines() if line.strip())
        finally:
            os.close(saved)
            sink.close()


def check_data_fits_file(path: object, need_bytes: int, file_bytes: int, *,
                         compression: str | None = None) -> None:
    """:func:`check_claim_fits_file` for voxel data, saying the two likely causes.

    A file too small for its header is either cut short or has a header that lies; the
    message names both, so a user knows whether to copy the file again or distrust it.
    """
    try:
        check_claim_fits_file(path, need_bytes, max(int(file_bytes), 0), compression=compression)
    except LoadError as exc:
        raise LoadError(path, f"{exc.reason}: the file is truncated or its header is corrupt") from None


__all__ += ["check_data_fits_file"]


# --- fast gzip reading: python-isal's igzip when installed, else the standard library's zlib ----
__all__ += ["open_gzip", "gzip_backend", "gzip_errors"]


def _igzip():
    """isal's igzip module, or None when python-isal is not installed (or fails to import)."""
    try:
        from isal import igzip
    except ImportError:
        return None
    return igzip


def gzip_backend() -> str:
    """``"isal"`` when :func:`open_gzip` decompresses with python-isal, else ``"zlib"``."""
    return "zlib" if _igzip() is None else "isal"


def open_gzip(path: str | os.PathLike):
    """Open a gzip file for binary reading with the fastest decompressor installed.

    python-isal's igzip (ISA-L) inflates the same stream in ~0.6x zlib's time (measured here)
    and, like :mod:`gzip`, follows concatenated members and checks each member's CRC-32 and
    length at its end; its ``readinto`` decompresses straight into the caller's buffer (no
    temporary chunk copy). Without python-isal this is :func:`gzip.open`. Errors are those of
    :func:`gzip_errors`; the caller closes the file (``with``).
    """
    igzip = _igzip()
    if igzip is None:
        import gzip

        return gzip.open(path, "rb")
    from isal import isal_zlib

    reader = getattr(isal_zlib, "_GzipReader", None)
    if reader is None:  # another python-isal layout: igzip.open is right, only a copy slower
        return igzip.open(path, "rb")
    # igzip.open's file object (a GzipFile) has no readinto of its own: io's default reads a
    # bytes object and copies it. The buffered reader around isal's C reader, which igzip.open
    # builds too, passes a large readinto straight to the decompressor.
    fileobj = open(path, "rb")
    try:
        return _ClosingReader(reader(fileobj, igzip.READ_BUFFER_SIZE), fileobj)
    except BaseException:
        fileobj.close()
        raise


class _ClosingReader(io.BufferedReader):
    """A buffered reader that also closes the file its raw reader reads from."""

    def __init__(self, raw, fileobj) -> None:
        super().__init__(raw)
        self._fileobj = fileobj

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._fileobj.close()


def gzip_errors() -> tuple[type[BaseException], ...]:
    """Exceptions a corrupt or truncated stream raises from :func:`open_gzip`'s reads.

    zlib raises ``zlib.error``, ISA-L its own ``IsalError`` (not an OSError); both raise
    ``gzip.BadGzipFile`` (OSError) for a bad header or CRC and EOFError for a stream cut short.
    """
    import zlib

    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, ValueError)
    if _igzip() is not None:
        from isal import isal_zlib

        errors += (isal_zlib.error,)
    return errors
