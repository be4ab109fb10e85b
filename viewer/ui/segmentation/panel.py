"""The Segmentation panel: train a segmenter on image/label pairs, run it, keep its results.

Everything heavy runs as a job: loading a folder of pairs, training, prediction, Dice, saving and
loading checkpoints, writing masks. The UI thread only builds widgets, plots points and adds
layers. The panel calls a segmenter only through the plugin contract (:mod:`viewer.plugins`):
``train(cases, config, progress, checkpoint_dir=, sources=)``, ``check_volume``, ``predict(...,
tta=)``, ``load``; what training reports (curves, :class:`~viewer.jobs.progress.SlicePreview`)
is drawn by the shared :class:`~viewer.ui.training_bar.TrainingBar`.

A training run writes its best checkpoint to a temporary folder as it goes, so a cancelled run
still leaves a usable model; "Save model…" copies that folder where the user wants it.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Iterable

import numpy as np
from PySide6.QtWidgets import QFormLayout, QPushButton, QTabWidget, QVBoxLayout, QWidget

from ...model import Scene
from ...plugins import PluginInfo
from ..training_bar import TrainingBar
from ..training_panel import TrainingPanel
from ..training_widgets import warm_imports
from .pairs import PairList
from .run import RunTab

__all__ = ["SegmentationPanel", "warm_up", "WARM_MODULES"]

_WARM = {"done": False}
#: what a segmenter's first call imports (libraries only: a plugin's own modules load on first use)
WARM_MODULES = ("torch", "monai.losses", "monai.transforms", "monai.inferers", "monai.networks.nets")


def warm_up() -> None:
    """Import torch and MONAI (:func:`warm_imports`: in a worker thread, the collector paused,
    then everything frozen out of it). Idempotent and thread-safe."""
    warm_imports(WARM_MODULES)
    _WARM["done"] = True


def _sources(pairs: list[dict]) -> list[dict]:
    """One provenance dict per case (in a worker: hashing reads the files): the files' absolute
    paths and SHA-256 where the pair came from files, the case's name always."""
    from ...plugins.checkpoint import sha256_file

    out = []
    for p in pairs:
        src: dict[str, str] = {"case": p["case"].name}
        if p["image"] and p["label"]:
            src.update(image=str(Path(p["image"]).resolve()), image_sha256=sha256_file(p["image"]),
                       label=str(Path(p["label"]).resolve()), label_sha256=sha256_file(p["label"]))
        out.append(src)
    return out


class SegmentationPanel(TrainingPanel):
    """Train / run / save segmenters on the scene's volumes. Lives in the window's right dock.

    ``infos``: the plugins to offer (PluginInfos or ``{name: plugin}``); default: every
    installed one (:func:`viewer.plugins.plugin_infos`).
    """

    title = "Segmentation"

    def __init__(self, scene: Scene, jobs, parent: QWidget | None = None,
                 infos: Iterable[PluginInfo] | dict | None = None) -> None:
        bar = TrainingBar([("loss, Dice", lambda k: k in ("loss", "val_dice"))],
                          "The validation prediction appears here while training runs.",
                          "Stop the running job; a cancelled training keeps its best model so far", name="seg")
        super().__init__(scene, jobs, "segmenter", bar, infos, parent)
        self.model_dir: str | None = None  # the model's checkpoint folder
        self.train_dir: str | None = None  # checkpoint folder of the running training
        self._trained_dir: str | None = None  # checkpoint folder of the latest finished training
        self._warming = False
        self.pairs = PairList(scene, jobs)
        self.run_tab = RunTab(self)
        self._build()
        self.pairs.changed.connect(self._update)
        self.pairs.message.connect(self.bar.status.setText)
        self.pairs.error.connect(self.error)
        self._wire()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not _WARM["done"] and not self._warming:
            # torch's imports in the background, before anyone presses Train; a plain thread,
            # not a job: nothing to show, cancel or report
            self._warming = True
            threading.Thread(target=warm_up, name="lucid3d-warm-up", daemon=True).start()

    # layout -------------------------------------------------------------------------------------
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        head = QFormLayout()
        head.addRow("Segmenter", self.chooser.box)
        head.addRow(self.chooser.description)
        self._add_model_rows(head, "model_label")
        lay.addLayout(head)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_train(), "Train")
        self.tabs.addTab(self.chooser.settings, "Settings")
        self.tabs.addTab(self.run_tab, "Run")
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.bar)  # the running job, whichever tab is shown

    def _build_train(self) -> QWidget:
        w = QWidget()
        lay = QVBoxLayout(w)
        lay.setContentsMargins(4, 6, 4, 4)
        lay.addWidget(self.pairs)
        self.train_btn = QPushButton("Train")
        self.train_btn.setObjectName("train_button")
        self.train_btn.setToolTip("Train on the ticked pairs with the settings of the Settings tab")
        self.train_btn.clicked.connect(self.train)
        lay.addWidget(self.train_btn)
        lay.addWidget(self.bar.charts, 1)
        lay.addWidget(self.bar.preview)
        return w

    # state -> widgets -----------------------------------------------------------------------------
    def _scene_changed(self) -> None:
        self.pairs.refresh()
        self.run_tab.fill_images()
        self._update()

    def _update(self) -> None:
        busy = self.job is not None
        self.train_btn.setEnabled(not busy and self.chooser.plugin() is not None and self.pairs.has_pairs())
        self.run_tab.update_buttons(busy)
        self.load_btn.setEnabled(not busy)
        self.pairs.folder_btn.setEnabled(not busy)
        self.save_model_btn.setEnabled(not busy and self.model_dir is not None)
        self.chooser.box.setEnabled(not busy)
        self.model_label.setText(self._model_text())

    def _model_text(self) -> str:
        if self.model is None:
            return "none yet: train one, or load a checkpoint"
        m = self.model.metrics or {}
        dice = m.get("best_val_dice")
        where = "trained here" if self.model_dir == self._trained_dir else Path(self.model_dir or "").name
        text = f"{self.model.plugin}, {where}"
        if isinstance(dice, (int, float)) and np.isfinite(dice):
            text += f"; best validation Dice {dice:.3f}"
            if m.get("validated_on_training_data"):
                text += " (on training data: its training patches, no case held out)"
        if m.get("precision") not in (None, "float32"):  # mixed precision from the hardware
            text += f"; trained in {m['precision']}"
        return text

    # training -------------------------------------------------------------------------------------
    def train(self) -> None:
        plugin = self.chooser.plugin()
        if plugin is None or self.job is not None:
            return
        try:
            config = self.chooser.config()
            pairs = self.pairs.training_pairs()
        except (TypeError, ValueError) as exc:
            self.error(f"Cannot train: {exc}")
            return
        if not pairs:
            self.error("No training pairs: load an image and a label volume on its grid, or add a folder of pairs.")
            return
        ckpt = tempfile.mkdtemp(prefix=f"lucid3d-{plugin.name}-")
        atexit.register(shutil.rmtree, ckpt, True)
        self.train_dir = ckpt
        cases = [p["case"] for p in pairs]

        def work(progress):
            progress.update(1, 1000, "preparing the training cases")  # the clock's start marker
            warm_up()
            sources = _sources(pairs)
            return plugin.train(cases, config, progress, checkpoint_dir=ckpt, sources=sources)

        self.bar.start(self.jobs, work, f"Training {plugin.name}", self._trained, failed=self.error,
                       cancelled=lambda: self.bar.status.setText("Cancelled before any weights were kept."))
        if len(cases) == 1:
            # nothing is held out: the Dice curve is measured on the training patches, and there is
            # no unseen case to preview (say so rather than leave an empty frame)
            self.bar.preview.set_hint("One training case: no case is held out, so the Dice curve is measured on "
                                      "its training patches (training data, not unseen data) and there is no "
                                      "validation preview. Add a second pair to validate on unseen data.")
        else:
            self.bar.preview.set_hint("The validation prediction appears here after the first validation.")
        self.tabs.setCurrentIndex(0)

    def _trained(self, model) -> None:
        old = self.model_dir if self.model_dir == self._trained_dir else None
        self.model, self.model_dir = model, self.train_dir
        self._trained_dir = self.train_dir
        if old and old != self.model_dir:
            shutil.rmtree(old, ignore_errors=True)
        self.run_tab.tta_box.setChecked(bool((model.config or {}).get("tta", True)))
        m = model.metrics or {}
        how = {"cancelled": "Cancelled: kept the best model so far",
               "time budget": "Stopped at the time budget", "epochs": "Done"}.get(m.get("stopped_by"), "Done")
        dice = m.get("best_val_dice")
        dice_text = f"best validation Dice {dice:.3f} (epoch {m.get('best_epoch')})" \
            if isinstance(dice, (int, float)) and np.isfinite(dice) else "not validated"
        self.bar.finish(f"{how}: {dice_text}, {m.get('steps', 0)} steps in {m.get('seconds', 0):.0f} s.")
        self._update()

    # checkpoints ------------------------------------------------------------------------------------
    def _load_dialog(self) -> None:
        folder = self._ask_folder("Load model (checkpoint folder)")
        if folder:
            self.load_model(folder)

    def load_model(self, folder: str) -> None:
        """Load a checkpoint folder in a job with the plugin that wrote it."""
        def done(plugin, model) -> None:
            if self.model_dir and self.model_dir == self._trained_dir and self.model_dir != self.train_dir:
                shutil.rmtree(self.model_dir, ignore_errors=True)  # an earlier training's leftover
            self.model, self.model_dir = model, str(folder)
            self.chooser.choose(plugin.name)
            self.run_tab.tta_box.setChecked(bool((model.config or {}).get("tta", True)))
            self.bar.status.setText(f"Loaded model {Path(folder).name}.")
            self._update()

        self._load(folder, warm_up, done)
