"""Undo/redo that stores only the voxels each edit changed.

A :class:`Change` keeps the edit's bounding box, a bit mask of the changed voxels in it
(``np.packbits``: one bit per voxel of the box) and the old and new values of those voxels only.
For a brush stroke the box is tight, so an undo step costs about 1.1–1.3 bytes per changed
uint8 voxel (the value plus its share of the bits) and never a copy of the volume: Slicer's
editor, which snapshots, is what users report taking 100+ GB of undo memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from ..model.labels import LabelMap

__all__ = ["Change", "EditHistory"]

Box = tuple[slice, slice, slice]


@dataclass(eq=False)
class Change:
    """One undoable edit: where (``box``), which voxels (``bits``), from what to what."""

    box: Box
    shape: tuple[int, int, int]
    bits: np.ndarray  # packbits of the changed voxels in the box, C order
    old: np.ndarray  # their values before, in C order of the box
    new: np.ndarray  # their values after (one value when a single label was painted)
    what: str = "edit"

    @property
    def n_voxels(self) -> int:
        return int(self.old.size)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes + self.old.nbytes + self.new.nbytes)

    def _mask(self) -> np.ndarray:
        n = int(np.prod(self.shape))
        return np.unpackbits(self.bits, count=n).astype(bool).reshape(self.shape)

    def apply(self, array: np.ndarray, undo: bool = False) -> None:
        values = self.old if undo else self.new
        region = array[self.box]
        mask = self._mask()
        if values.size == 1:
            region[mask] = values[0]
        else:
            region[mask] = values


class _View:
    """A sub-array addressed with a Change's own (absolute) box: ``view[change.box]`` -> the
    part of ``base`` at ``local``. Lets a Change be undone onto a copy of a region."""

    def __init__(self, base: np.ndarray, local: Box) -> None:
        self.base, self.local = base, local

    def __getitem__(self, _box: Box) -> np.ndarray:
        return self.base[self.local]


def _box_of(mask: np.ndarray, offset: Box) -> Box | None:
    """The tight box around ``mask``'s True voxels, in the coordinates of the full array."""
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    if any(i.size == 0 for i in idx):
        return None
    return tuple(slice(o.start + int(i[0]), o.start + int(i[-1]) + 1) for o, i in zip(offset, idx))  # type: ignore[return-value]


@dataclass(eq=False)
class EditHistory:
    """The edits of one label map, undoable and redoable; ``changed`` fires with the box touched.

    ``saved`` marks the history position that matches the file on disk (``dirty`` is whether the
    map differs from it). ``limit_bytes`` bounds the memory of the undo steps: the oldest are
    dropped first.
    """

    labels: LabelMap
    limit_bytes: int = 512 << 20
    done: list[Change] = field(default_factory=list)
    undone: list[Change] = field(default_factory=list)
    saved_at: int | None = 0
    dropped: int = 0

    changed = Signal(object)  # the box (tuple of slices) that changed

    def apply(self, mask: np.ndarray, value: int | np.ndarray, where: Box | None = None,
              what: str = "edit") -> Change | None:
        """Set the voxels of ``mask`` (within ``where``, or the whole array) to ``value``.

        ``value`` is one label or an array of ``mask``'s shape. Voxels that already hold the
        value are not recorded. Returns the recorded Change, or None when nothing changed.
        """
        arr = self._writable()
        where = where or tuple(slice(0, n) for n in arr.shape)  # type: ignore[assignment]
        region = arr[where]
        target = np.broadcast_to(np.asarray(value, dtype=arr.dtype), region.shape)
        diff = mask & (region != target)
        box = _box_of(diff, where)
        if box is None:
            return None
        local = tuple(slice(b.start - w.start, b.stop - w.start) for b, w in zip(box, where))
        diff = diff[local]
        sub = arr[box]
        old = sub[diff].copy()
        tgt = target[local][diff]
        new = tgt[:1].copy() if np.ndim(value) == 0 else tgt.copy()
        change = Change(box, diff.shape, np.packbits(diff, axis=None), old, new, what)
        sub[diff] = tgt
        self._record(change)
        self.changed.emit(box)
        return change

    def _writable(self) -> np.ndarray:
        arr = self.labels.array
        if not (isinstance(arr, np.ndarray) and arr.flags.writeable):
            # a memory map or a read-only view of a file: edits go to a private copy in memory
            arr = np.array(arr)
            self.labels.array = arr
        return arr

    # a stroke (press .. release) is one undo step, however many dabs it took ------------------
    def begin_group(self) -> None:
        self._group_start = len(self.done)

    def end_group(self, what: str = "edit") -> Change | None:
        """Merge the changes since :meth:`begin_group` into one undo step."""
        start = getattr(self, "_group_start", None)
        self._group_start = None
        if start is None or len(self.done) - start <= 1:
            return self.done[-1] if self.done and start is not None and len(self.done) > start else None
        parts = self.done[start:]
        del self.done[start:]
        union = tuple(slice(min(c.box[a].start for c in parts), max(c.box[a].stop for c in parts)) for a in range(3))
        arr = self._writable()
        after = arr[union].copy()
        before = after.copy()
        for c in reversed(parts):  # undo each part on the copy: the region as it was before the stroke
            local = tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(c.box, union))
            c.apply(_View(before, local), undo=True)  # type: ignore[arg-type]
        diff = before != after
        box = _box_of(diff, union)
        if box is None:
            return None
        local = tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union))
        diff = diff[local]
        old, new = before[local][diff], after[local][diff]
        if new.size and np.all(new == new[0]):
            new = new[:1].copy()
        change = Change(box, diff.shape, np.packbits(diff, axis=None), old.copy(), new.copy(), what)
        self.done.append(change)
        return change

    def _record(self, change: Change) -> None:
        if self.saved_at is not None and self.saved_at > len(self.done):
            self.saved_at = None  # the saved state was in the redo list: unreachable now
        self.done.append(change)
        self.undone.clear()
        while self.nbytes > self.limit_bytes and len(self.done) > 1:
            self.done.pop(0)
            self.dropped += 1
            self.saved_at = None if self.saved_at in (None, 0) else self.saved_at - 1

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.done) + sum(c.nbytes for c in self.undone)

    def undo(self) -> Change | None:
        if not self.done:
            return None
        change = self.done.pop()
        change.apply(self._writable(), undo=True)
        self.undone.append(change)
        self.changed.emit(change.box)
        return change

    def redo(self) -> Change | None:
        if not self.undone:
            return None
        change = self.undone.pop()
        change.apply(self._writable())
        self.done.append(change)
        self.changed.emit(change.box)
        return change

    def mark_saved(self) -> None:
        self.saved_at = len(self.done)

    @property
    def dirty(self) -> bool:
        return self.saved_at != len(self.done)
