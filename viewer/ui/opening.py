"""Opening files in the main window: the Open dialogs, loads in the background that keep the order
the user gave, DICOM folders with a series to pick, the recent-files menu, drag and drop.

:class:`FileOpening` is a part of :class:`~viewer.ui.main_window.MainWindow` (a mixin): it uses the
window's ``scene``, ``jobs``, ``settings``, ``recent_menu``, ``render_dock``, ``open_scene`` and
``_error``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog

from ..io import FILE_FILTER, kind_of, load_path
from ..io.labelfiles import labels_with_sidecar
from ..model import ImageLayer, LabelMap, ViewSet, Volume, layer_for
from ..model.errors import LoadError
from .dialogs import pick_series

__all__ = ["FileOpening", "looks_like_labels", "MAX_RECENT"]

_LABEL_HINTS = ("label", "labels", "seg", "segmentation", "mask", "aseg", "parc", "gt")
MAX_RECENT = 10


def looks_like_labels(path: str | Path, data) -> bool:
    """An integer volume whose name says segmentation opens as labels over the image."""
    name = Path(path).name.lower()
    return (isinstance(data, Volume) and data.array.dtype.kind in "iub"
            and any(h in name.replace("-", "_").replace(".", "_").split("_") for h in _LABEL_HINTS))


def _ready_first_frame(vol: Volume) -> None:
    """What the first frame reads, read here in the loading worker: the display range, and
    the three middle slices. A memory-mapped file is read on first touch: a sagittal slice of
    a 512x512x1000 scan touches 128 k pages (~100 ms), which on the UI thread was a stall."""
    vol.quick_range()
    a = vol.array
    if isinstance(a, np.memmap) and a.ndim == 3:
        i, j, k = (n // 2 for n in a.shape)
        for cut in (a[:, :, k], a[:, j, :], a[i, :, :]):
            np.asarray(cut).max()  # numpy releases the GIL while it reads


def _read_whole(vol: Volume) -> None:
    """Every page of a memory-mapped volume read once (and its exact statistics made on the
    way), in a worker after the first frame: then scrolling any view never waits on the disk
    or on page faults on the UI thread."""
    vol.stats()


class _Batch:
    """Files opened together: added to the scene in the order the user gave them, whatever
    order their loads finish in; an integer volume named like a segmentation becomes a label
    layer when the scene or the batch holds an image."""

    def __init__(self, window: "FileOpening", paths: list[str]) -> None:
        self.window, self.paths = window, paths
        self.results: dict[str, object] = {}
        self.next = 0

    def done(self, path: str, data) -> None:
        self.results[path] = data
        self._flush()

    def skip(self, path: str) -> None:
        self.results[path] = None
        self._flush()

    def _flush(self) -> None:
        while self.next < len(self.paths) and self.paths[self.next] in self.results:
            path = self.paths[self.next]
            data = self.results[path]
            self.next += 1
            if data is None:
                continue
            has_image = self.window.scene.reference_image() is not None or any(
                isinstance(d, Volume) and not looks_like_labels(p, d) for p, d in self.results.items())
            self.window._add_loaded(path, data, has_image)


class FileOpening:
    """The window's file opening (see the module's docstring)."""

    # opening ---------------------------------------------------------------------------------
    def open_dialog(self, as_labels: bool = False) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open", self._last_dir(), FILE_FILTER)
        if paths:
            self.open_paths(paths, as_labels=as_labels)

    def open_folder_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder", self._last_dir())
        if path:
            self.open_paths([path])

    def open_photos_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open photo set (transforms.json or COLMAP folder)",
                                                self._last_dir())
        if path:
            if kind_of(path) != "viewset":
                self._error(str(LoadError(path, "no transforms*.json or COLMAP model (cameras.txt, "
                                                "images.txt) in this folder")))
                return
            self.open_paths([path])

    def _last_dir(self) -> str:
        return str(self.settings.value("last_dir", str(Path.home())))

    def open_paths(self, paths, as_labels: bool = False) -> None:
        """Open files and folders in the background; they become layers in the order given."""
        batch = _Batch(self, [str(p) for p in paths])
        for p in batch.paths:
            kind = kind_of(p) if Path(p).exists() else "missing"
            if kind == "scene":
                batch.skip(p)
                self.open_scene(p)
            elif kind == "dicom" and Path(p).is_dir():
                self._open_dicom_folder(p, batch)
            else:
                self._submit_load(p, batch, as_labels=as_labels)

    def _submit_load(self, path: str, batch: "_Batch", as_labels: bool = False,
                     series: str | None = None) -> None:
        def work(progress):
            progress.update(0, 0, f"loading {Path(path).name}")
            data = load_path(path, as_labels=as_labels, series=series)
            if isinstance(data, Volume):
                _ready_first_frame(data)
            return data

        def failed(message: str) -> None:
            batch.skip(path)
            self._error(message)

        self.jobs.submit(work, f"Loading {Path(path).name}",
                         on_done=lambda data: batch.done(path, data), on_error=failed)

    def _open_dicom_folder(self, folder: str, batch: "_Batch") -> None:
        def work(progress):
            progress.update(0, 0, "scanning DICOM folder")
            from ..io.dicom import list_series
            return list_series(Path(folder))

        def done(series):
            if not series:
                batch.skip(folder)
                self._error(str(LoadError(folder, "no readable DICOM series in this folder")))
                return
            uid = series[0].uid if len(series) == 1 else pick_series(self, series)
            if uid:
                self._submit_load(folder, batch, series=uid)
            else:
                batch.skip(folder)

        def failed(message: str) -> None:
            batch.skip(folder)
            self._error(message)

        self.jobs.submit(work, f"Scanning {Path(folder).name}", on_done=done, on_error=failed)

    def _add_loaded(self, path: str, data, has_image: bool) -> None:
        if isinstance(data, Volume) and looks_like_labels(path, data) and has_image:
            try:
                data = labels_with_sidecar(LabelMap.from_volume(data), path)
            except ValueError:
                pass
        layer = layer_for(data)
        if isinstance(layer, ImageLayer):
            # volume rendering on by default: big scans render a downsampled copy made in a worker
            layer.render_mode = "ct_bone" if layer.data.modality == "CT" else "off"
        self.scene.add(layer)
        if isinstance(data, Volume) and isinstance(data.array, np.memmap):
            self.jobs.submit(lambda _p: _read_whole(data), f"Reading {Path(path).name}", lane="view")
        if isinstance(data, ViewSet):
            counts = ", ".join(f"{len(data.split(s))} {s}" for s in data.splits)
            self.statusBar().showMessage(f"{Path(path).name}: {len(data.frames)} photos ({counts}); "
                                         "click a camera to look through it", 10000)
            self.render_dock.show()
        note = getattr(data, "meta", {}).get("note")
        if note:
            self.statusBar().showMessage(f"{Path(path).name}: {note}", 10000)
        self._add_recent(path)

    # recent files ----------------------------------------------------------------------------
    def _recent(self) -> list[str]:
        val = self.settings.value("recent", [])
        return [val] if isinstance(val, str) else list(val or [])

    def _add_recent(self, path: str) -> None:
        if path.startswith("demo:"):
            return
        path = str(Path(path).resolve())
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for i, p in enumerate(self._recent()):
            act = QAction(f"&{i + 1} {p}", self)
            act.triggered.connect(lambda _=False, p=p: self.open_paths([p]))
            self.recent_menu.addAction(act)
        self.recent_menu.setEnabled(bool(self._recent()))

    # drag and drop ---------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)
