"""The training cases of the Lesions panel: a ``cases.json`` manifest (:mod:`viewer.io.case_manifest`)
read and checked in a job, with a one-line summary; or demo cases (CT crops with synthetic lesions,
:mod:`viewer.samples.lesions`) written to a temporary folder first."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

__all__ = ["CasesPicker", "DEMO_CASES"]

DEMO_CASES = 24  # the small-data setting: 24 crops, half with a lesion


def _sources(rows, manifest: Path) -> list[dict]:
    """Provenance per case (in a worker: hashing reads the files), as ``train-classifier`` writes it."""
    from ...plugins.checkpoint import sha256_file

    out = []
    for r in rows:
        src = {"image": str(r.path.resolve()), "label": r.label, "manifest": str(manifest.resolve())}
        if r.path.is_file():
            src["image_sha256"] = sha256_file(r.path)
        out.append(src)
    return out


def summary(rows) -> str:
    """"24 cases: 12 lesion, 12 no lesion; boxes for all" (what a user checks before training)."""
    counts = Counter(r.label for r in rows)
    classes = ", ".join(f"{n} {label}" for label, n in sorted(counts.items()))
    with_boxes = sum(r.boxes is not None for r in rows)
    boxes = "boxes for all" if with_boxes == len(rows) else (
        "labels alone (no boxes)" if not with_boxes else f"boxes for {with_boxes} of {len(rows)}")
    return f"{len(rows)} cases: {classes}; {boxes}"


class CasesPicker(QWidget):
    """"Open cases.json…" and "Demo cases": ``rows`` (ManifestCases, images loaded) and ``sources``
    once read; ``changed`` then. Problems go to ``error`` (one line naming the manifest)."""

    changed = Signal()
    error = Signal(str)

    def __init__(self, jobs, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self.path: Path | None = None
        self.rows: list = []
        self.sources: list[dict] = []
        self.loading = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.open_btn = QPushButton("Open cases.json…")
        self.open_btn.setToolTip('A JSON list of {"image": path relative to it, "label": class, '
                                 '"boxes": [[r0, a0, s0, r1, a1, s1], ...]} (RAS mm)')
        self.open_btn.clicked.connect(self._dialog)
        self.demo_btn = QPushButton("Demo cases")
        self.demo_btn.setToolTip(f"Write {DEMO_CASES} CT crops with synthetic lesions (half of them) and their "
                                 "cases.json to a temporary folder, and use them")
        self.demo_btn.clicked.connect(self.load_demo)
        row.addWidget(self.open_btn, 1)
        row.addWidget(self.demo_btn)
        lay.addLayout(row)
        self.label = QLabel("No cases yet: open a cases.json manifest.")
        self.label.setObjectName("cases_summary")
        self.label.setWordWrap(True)
        lay.addWidget(self.label)

    def _dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a case manifest", str(Path.home()), "Case manifest (*.json)")
        if path:
            self.load(path)

    def load(self, path: str | Path) -> None:
        """Read and check the manifest and its images in a job."""
        path = Path(path)

        def work(progress):
            from ...io.case_manifest import read_manifest

            progress.update(0, 0, f"reading {path.name}")
            rows = read_manifest(path)
            return rows, _sources(rows, path)

        self._start(work, f"Reading {path.name}", path)

    def load_demo(self, n: int = DEMO_CASES) -> None:
        """Write ``n`` demo crops and their manifest to a temporary folder, then read them."""
        folder = Path(tempfile.mkdtemp(prefix="lucid3d-lesion-cases-"))
        atexit.register(shutil.rmtree, folder, True)

        def work(progress):
            from ...io.case_manifest import read_manifest
            from ...samples.lesions import write_lesion_set

            progress.update(0, 0, f"writing {n} demo crops")
            manifest = write_lesion_set(folder, n)
            rows = read_manifest(manifest)
            return rows, _sources(rows, manifest)

        self._start(work, "Writing demo lesion cases", folder / "cases.json")

    def _start(self, work, label: str, path: Path) -> None:
        self.loading = True
        self.label.setText(f"{label}…")
        self.changed.emit()

        def done(result) -> None:
            self.loading = False
            self.rows, self.sources = result
            self.path = path
            self.label.setText(f"{path.name}: {summary(self.rows)}")
            self.label.setToolTip(str(path))
            self.changed.emit()

        def failed(message: str) -> None:
            self.loading = False
            self.label.setText("No cases: " + (f"{self.path.name} is still used." if self.rows else "open a manifest."))
            self.changed.emit()
            self.error.emit(message)

        self.jobs.submit(work, label, on_done=done, on_error=failed)

    def set_enabled(self, on: bool) -> None:
        self.open_btn.setEnabled(on and not self.loading)
        self.demo_btn.setEnabled(on and not self.loading)
