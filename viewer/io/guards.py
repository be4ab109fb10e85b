"""What every command and writer checks before touching a file: output folders are new, empty or an
earlier output of the same kind; an output is never an input; the path the user typed behind our
hidden temporary names; and ``reading``, which turns what a reader raises on a hostile file into
one LoadError naming it."""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..model.errors import LoadError

__all__ = ["user_path", "refuse_same_file", "prepare_out_folder", "only_files", "reading", "load_input", "UNREADABLE"]


# Paths the user gave --------------------------------------------------------------------------
_TEMP_FILE = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.part(?P<suffix>.*)$")  # atomic_path's mkstemp
_TEMP_DIR = re.compile(r"^\.(?P<name>.+)\.\d+\.[0-9a-f]{8}\.partial$")  # capture's folder


def user_path(path: str | os.PathLike) -> str:
    """The path the user asked for behind one of our hidden temporary names (``.x.nii.ab12cd34.part.nii.gz``
    -> ``x.nii.gz``; ``.DIR.123.0badf00d.partial/...`` -> ``DIR/...``); any other path unchanged."""
    parts, changed = list(Path(path).parts), False
    for i, part in enumerate(parts):
        if m := _TEMP_DIR.match(part):
            parts[i], changed = m["name"], True
        elif m := _TEMP_FILE.match(part):
            suffix = m["suffix"]
            parts[i], changed = m["stem"] + ("." + suffix.rsplit(".", 1)[-1] if suffix else ""), True
    return str(Path(*parts)) if changed else str(path)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def refuse_same_file(out: str | os.PathLike, **others: str | os.PathLike | None) -> None:
    """LoadError if the output ``out`` is the same file as another path the user gave (also
    through symbolic links or relative paths); ``others`` maps an option name to its path."""
    for option, other in others.items():
        if other is not None and _same(Path(out), Path(other)):
            raise LoadError(out, f"is also the --{option.replace('_', '-')} file: refusing to overwrite it")


def prepare_out_folder(out: str | os.PathLike, *, inputs: Sequence[str | os.PathLike] = (), what: str = "output",
                       ours: Callable[[Path], bool] | None = None, overwrite: bool = False) -> Path:
    """Check a folder a command is about to write, before any work: never write over a user's folder.

    The folder must be new or empty, or, with ``overwrite``, hold nothing but an earlier output of
    the same command (``ours(folder)`` says so: a checkpoint of the same method, a render's PNGs).
    It may not be, lie inside, or contain one of ``inputs``; its parent must exist. Returns the path.
    Raises LoadError naming ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise LoadError(out, "exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise LoadError(out, f"the folder {parent} does not exist")
    for inp in map(Path, inputs):
        try:
            o, i = out.resolve(), inp.resolve()
        except OSError:
            continue
        if o == i or o.is_relative_to(i) or i.is_relative_to(o):
            raise LoadError(out, "refusing to write into an input (or a folder holding one)")
    if out.is_dir() and any(out.iterdir()):
        if ours is None:  # a command that never overwrites
            raise LoadError(out, "exists and is not empty: refusing to overwrite; choose a new folder")
        if not ours(out):
            raise LoadError(out, f"is a folder that holds something other than a {what}: refusing to write into "
                                 "it; give a new or empty folder")
        if not overwrite:
            raise LoadError(out, f"already holds a {what}: add --overwrite to replace it")
    return out


def only_files(folder: Path, allowed: Callable[[str], bool]) -> bool:
    """True if every entry of ``folder`` is a regular file whose name ``allowed`` accepts
    (our own hidden temporary files too: a crash may have left one)."""
    for entry in folder.iterdir():
        if not entry.is_file() or entry.is_symlink():
            return False
        if not (allowed(entry.name) or _TEMP_FILE.match(entry.name)):
            return False
    return True


# What a hostile file makes a reader (ours or a library's) raise besides LoadError: bad input, said
# as such with the path. KeyError, IndexError, TypeError, AttributeError are not here: from our code
# they are bugs and must show as such (the CLI's "internal error" line); a reader whose library
# raises them on bad bytes catches them itself (as nrrdfile and dicom do).
UNREADABLE = (ValueError, OverflowError, EOFError, struct.error, zlib.error, RuntimeError)


@contextlib.contextmanager
def reading(path: str | os.PathLike, kind: str | None = None) -> Iterator[None]:
    """Blame ``path`` for what a reader raises while reading it: one LoadError line naming the
    file (``cannot read it as KIND (...)`` when the reader's kind is known). The one error map of
    every reader call: ``load_path`` and the commands use it alike."""
    try:
        yield
    except LoadError:
        raise
    except MemoryError:
        raise LoadError(path, "too large for this machine's memory") from None
    except UNREADABLE + (OSError,) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        raise LoadError(path, f"cannot read it as {kind} ({why})" if kind else f"cannot be read ({why})") from None


def load_input(path: str | os.PathLike, **kwargs: Any) -> Any:
    """``viewer.io.load_path`` with every failure one LoadError naming ``path``."""
    from ..io import load_path

    with reading(path):
        return load_path(path, **kwargs)
