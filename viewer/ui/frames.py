"""4D images in the window: the time frame a layer asks for is read in a worker (io lane) and
shown when it arrives; while the user drags the frame slider only the latest frame is shown."""

from __future__ import annotations

from typing import Any

from ..model import ImageLayer, Scene

__all__ = ["FrameLoader"]


class FrameLoader:
    """Reads the frame each 4D ``ImageLayer`` of ``scene`` asks for (``layer.frame``), with ``jobs``."""

    def __init__(self, scene: Scene, jobs: Any) -> None:
        self.scene, self.jobs = scene, jobs
        self._slots: dict[int, Any] = {}
        self._pending: dict[int, Any] = {}  # layer id -> its running job
        scene.layer_inserted.connect(self._added)
        scene.layer_removed.connect(self._removed)
        for i, layer in enumerate(scene):
            self._added(i, layer)

    def _added(self, index: int, layer: Any) -> None:
        if isinstance(layer, ImageLayer) and layer.n_frames > 1 and id(layer) not in self._slots:
            slot = lambda k, l=layer: self.request(l, k)  # noqa: E731
            layer.events.frame.connect(slot)
            self._slots[id(layer)] = slot
            if layer.frame != int(layer.data.meta.get("frame", 0)):  # a scene restored at another frame
                self.request(layer, layer.frame)

    def _removed(self, index: int, layer: Any) -> None:
        slot = self._slots.pop(id(layer), None)
        if slot is not None:
            layer.events.frame.disconnect(slot)
        job = self._pending.pop(id(layer), None)
        if job is not None:
            job.cancel()

    def request(self, layer: ImageLayer, k: int) -> None:
        old = self._pending.get(id(layer))
        if old is not None and not old.done:
            old.cancel()  # a frame the user has moved past: its read stops at the next chunk

        def done(array: Any, layer=layer, k=k) -> None:
            if self._pending.get(id(layer)) is job:
                self._pending.pop(id(layer), None)
            if layer in list(self.scene):
                layer.show_frame(k, array)

        job = self.jobs.submit(lambda _p: layer.read_frame(k), f"Reading frame {k + 1} of {layer.name}",
                               on_done=done, lane="io")
        self._pending[id(layer)] = job
