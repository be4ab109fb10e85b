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

__all__ = ["Change", "Step", "EditHistory"]

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


@dataclass(eq=False)
class Step:
    """Several changes undone and redone together (the dabs of one brush stroke)."""

    parts: list[Change]
    what: str = "edit"

    @property
    def box(self) -> Box:
        return tuple(slice(min(c.box[a].start for c in self.parts), max(c.box[a].stop for c in self.parts))
                     for a in range(3))  # type: ignore[return-value]

    @property
    def n_voxels(self) -> int:
        return sum(c.n_voxels for c in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.parts)

    def apply(self, array: np.ndarray, undo: bool = False) -> None:
        for c in (reversed(self.parts) if undo else self.parts):
            c.apply(array, undo=undo)


def _changes(step: "Change | Step") -> list[Change]:
    return step.parts if isinstance(step, Step) else [step]


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
    done: list[Change | Step] = field(default_factory=list)
    undone: list[Change | Step] = field(default_factory=list)
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

    def end_group(self, what: str = "edit") -> "Step | None":
        """Make the changes since :meth:`begin_group` one undo step. Each dab keeps its own tight
        box (a union box of a long stroke would cost a bit per voxel of the whole area), and a
        dab over voxels an earlier one already set records nothing for them."""
        start = getattr(self, "_group_start", None)
        self._group_start = None
        if start is None or len(self.done) <= start:
            return None
        parts = [c for step in self.done[start:] for c in _changes(step)]
        del self.done[start:]
        step = Step(parts, what)
        self.done.append(step)
        return step

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

    def undo(self) -> "Change | Step | None":
        if not self.done:
            return None
        step = self.done.pop()
        step.apply(self._writable(), undo=True)
        self.undone.append(step)
        self.changed.emit(step.box)
        return step

    def redo(self) -> "Change | Step | None":
        if not self.undone:
            return None
        step = self.undone.pop()
        step.apply(self._writable())
        self.done.append(step)
        self.changed.emit(step.box)
        return step

    def mark_saved(self) -> None:
        self.saved_at = len(self.done)

    @property
    def dirty(self) -> bool:
        return self.saved_at != len(self.done)
