"""IDR, the Implicit Differentiable Renderer (Yariv et al., NeurIPS 2020): a signed-distance MLP and
a rendering MLP learned from masked photos and their cameras alone; no mesh is given
(``geometry = "none"``), and the surface comes back as a mesh (:meth:`IDRPlugin.extract_mesh`,
``main.py export-mesh``).

* Geometry: an MLP on positionally encoded points, softplus (beta 100), geometric (sphere)
  initialisation; colour: an MLP on (x, n, v, z) (``plugins/idr/network.py``).
* Rays meet the surface by sphere tracing with a sampled bracket and secant refinement; the
  intersection is differentiated implicitly, first order (``plugins/idr/tracing.py``).
* Loss: L1 colour on pixels inside the mask whose ray hits the surface, the mask loss (a soft
  alpha, sigmoid(-alpha * the smallest SDF along the ray), alpha doubling over the run) on the
  rest, and the eikonal loss; optionally a learned rotation and translation per training view.
* The scene is normalised so that the visual hull of the masks (or a ``cameras.npz`` scale
  matrix) sits inside the unit sphere; the checkpoint keeps the normalisation, so renders and
  exported meshes are in the scene's world frame.

Light: torch loads on the first call that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

from viewer.plugins import SEED_MAX, Orbit, Range, RendererBase, TrainedModel, validate_config

__all__ = ["Config", "IDRPlugin", "PLUGIN", "BOUNDS", "FORMAT", "resolved"]

FORMAT = "lucid3d-idr"  # config.json's "format"

# 0 = "auto": the CPU size, or the paper's on CUDA (resolved when fitting and stored)
_AUTO = {"sdf_width": (128, 512), "sdf_layers": (4, 8), "feature": (64, 256), "render_width": (128, 512),
         "render_layers": (3, 4), "rays": (512, 2048), "samples": (32, 100)}


@dataclass
class Config:
    """Settings of IDR; the defaults fit a 128x128 masked capture on 2 CPU cores in 15 minutes.
    Sizes left at 0 take the CPU value, or the paper's on CUDA."""

    size: int = field(default=128, metadata={"help": "training image size: frames whose longer side is larger are "
                                                     "scaled down to it, with their cameras (0 = their own size)"})
    minutes: float = field(default=15.0, metadata={"help": "wall-clock budget (0 = none); the best checkpoint is kept"})
    iters: int = field(default=0, metadata={"help": "optimisation steps at most (0 = until the time budget)"})
    rays: int = field(default=0, metadata={"help": "rays (pixels) per step (0 = 512 on CPU, 2048 on CUDA)"})
    lr: float = field(default=5e-4, metadata={"help": "Adam learning rate of the networks"})
    lr_decay: float = field(default=0.1, metadata={"help": "the learning rate falls exponentially to this fraction "
                                                           "by the end of the budget"})
    sdf_width: int = field(default=0, metadata={"help": "SDF network width (0 = 128 on CPU, 512 on CUDA)"})
    sdf_layers: int = field(default=0, metadata={"help": "SDF network hidden layers (0 = 4 on CPU, 8 on CUDA)"})
    sdf_freqs: int = field(default=6, metadata={"help": "positional-encoding frequencies of points"})
    feature: int = field(default=0, metadata={"help": "SDF feature vector given to the colour network "
                                                      "(0 = 64 on CPU, 256 on CUDA)"})
    render_width: int = field(default=0, metadata={"help": "colour network width (0 = 128 on CPU, 512 on CUDA)"})
    render_layers: int = field(default=0, metadata={"help": "colour network hidden layers (0 = 3 on CPU, 4 on CUDA)"})
    view_freqs: int = field(default=4, metadata={"help": "positional-encoding frequencies of view directions"})
    init_radius: float = field(default=0.6, metadata={"help": "radius of the initial sphere (the object is scaled "
                                                              "into the unit sphere)"})
    trace_steps: int = field(default=16, metadata={"help": "sphere-tracing steps before the sampled bracket"})
    samples: int = field(default=0, metadata={"help": "samples along a ray: the bracket for the secant method and the "
                                                      "smallest SDF of the mask loss (0 = 32 on CPU, 100 on CUDA)"})
    secant_steps: int = field(default=8, metadata={"help": "secant refinement steps in the bracket"})
    mask_weight: float = field(default=100.0, metadata={"help": "weight of the mask loss (the paper's 100)"})
    eikonal_weight: float = field(default=0.1, metadata={"help": "weight of the eikonal loss (the paper's 0.1)"})
    alpha_init: float = field(default=50.0, metadata={"help": "sharpness of the soft mask at the start"})
    alpha_doublings: int = field(default=5, metadata={"help": "the sharpness doubles this many times, evenly "
                                                              "over the run"})
    refine_cameras: bool = field(default=False, metadata={"help": "learn a rotation and translation per training "
                                                                  "view (noisy poses)"})
    lr_cameras: float = field(default=1e-3, metadata={"help": "Adam learning rate of the pose corrections"})
    supersample: int = field(default=2, metadata={"help": "rays per pixel along each axis when rendering and in the "
                                                          "final held-out score (2: 2x2, anti-aliased silhouettes; "
                                                          "never more rays than a 256x256 frame)"})
    val_every: int = field(default=500, metadata={"help": "score the held-out views every N steps"})
    val_views: int = field(default=4, metadata={"help": "held-out views scored while fitting (all at the end)"})
    surface_minutes: float = field(default=2.0, metadata={
        "help": "report the surface so far (a coarse mesh the window shows) every M minutes; 0 = only at the end"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    threads: int = field(default=1, metadata={"help": "torch CPU threads while fitting and rendering (0 = torch's "
                                                      "default); one was 10x faster than two a step on a busy "
                                                      "2-core machine (small batches, spinning threads)"})

    def validate(self) -> None:
        """ValueError ``"field: problem"`` for a wrong-typed or out-of-range setting."""
        validate_config(self, BOUNDS)
        if self.iters == 0 and self.minutes == 0:
            raise ValueError("iters: 0 (no step limit) with minutes 0 (no time limit) would never stop")
        width, layers = resolved(self, "sdf_width"), resolved(self, "sdf_layers")
        if layers >= 4 and width <= 3 + 6 * self.sdf_freqs:
            raise ValueError(f"sdf_width: {width} leaves no room for the skip connection's "
                             f"{3 + 6 * self.sdf_freqs} encoded inputs; make it wider")


BOUNDS = {
    "size": Range(0, 4096), "minutes": Range(0, 100_000), "iters": Range(0, 100_000_000), "rays": Range(0, 1 << 20),
    "lr": Range(0, 1, lo_open=True), "lr_decay": Range(0, 1, lo_open=True), "sdf_width": Range(0, 4096),
    "sdf_layers": Range(0, 16), "sdf_freqs": Range(0, 16), "feature": Range(0, 1024), "render_width": Range(0, 4096),
    "render_layers": Range(0, 16), "view_freqs": Range(0, 16), "init_radius": Range(0.05, 0.95),
    "trace_steps": Range(0, 1000), "samples": Range(0, 1024), "secant_steps": Range(0, 100),
    "mask_weight": Range(0, 1e6), "eikonal_weight": Range(0, 1e6), "alpha_init": Range(0, 1e6, lo_open=True),
    "alpha_doublings": Range(0, 20), "supersample": Range(1, 8), "lr_cameras": Range(0, 1, lo_open=True), "val_every": Range(1, 100_000_000),
    "val_views": Range(0, 100_000), "surface_minutes": Range(0, 100_000), "seed": Range(0, SEED_MAX), "threads": Range(0, 1024),
    "device": lambda v: None if v in ("cpu", "cuda") or v.startswith("cuda:") else f"must be cpu or cuda, got {v!r}",
}


def resolved(cfg: Any, name: str) -> int:
    """A size setting with 0 (auto) replaced by the CPU or CUDA default for ``cfg.device``."""
    value = int(getattr(cfg, name) if not isinstance(cfg, dict) else cfg[name])
    if value:
        return value
    device = cfg["device"] if isinstance(cfg, dict) else cfg.device
    return _AUTO[name][1 if str(device).startswith("cuda") else 0]


class IDRPlugin(RendererBase):
    name = "idr"
    description = "IDR: a signed-distance surface and its appearance learned from masked photos (no mesh needed)"
    geometry = "none"
    Config = Config
    checkpoint_files: ClassVar[tuple[str, ...]] = ("config.json", "model.safetensors")

    def fit(self, views: Any, geometry: Any, config: Any, progress: Any, *,
            checkpoint_dir: str | Path | None = None, sources: Mapping[str, str] | None = None) -> TrainedModel:
        """Fit to the masked photos of ``views`` (train split; val, else test, held out)."""
        from .fit import fit_idr

        if geometry is not None:
            raise ValueError("IDR learns the surface from the photos: give no mesh or points")
        return fit_idr(views, config, progress, plugin=self.name, checkpoint_dir=checkpoint_dir, sources=sources)

    def render(self, model: TrainedModel, camera: Any, background: Sequence[float] | None = None,
               preview: bool = False) -> Any:
        """``preview``: a frame drawn while the camera moves: one ray per pixel (4x cheaper)."""
        from .model import render_image

        return render_image(model, camera, background, supersample=1 if preview else None)

    def orbit(self, model: TrainedModel) -> Orbit:
        o = model.meta.get("orbit") or {}
        return Orbit(center=tuple(map(float, o.get("center", model.centre))),
                     radius=float(o.get("radius", 3.0 * model.scale)), up=tuple(map(float, o.get("up", (0, 0, 1)))),
                     elevation=float(o.get("elevation", 20.0)), view_angle=float(o.get("view_angle", 40.0)))

    def extract_mesh(self, model: TrainedModel, resolution: int = 128,
                     view_dir: Sequence[float] | None = None) -> Any:
        """The zero level set as a :class:`~viewer.model.geometry.Mesh` in the world frame with
        vertex colours (None when the SDF has no zero crossing on the grid)."""
        from .surface import extract_mesh

        return extract_mesh(model, resolution, view_dir)

    def learned_volume(self, model: TrainedModel, resolution: int = 128) -> Any:
        """The signed distance as a Volume in the world frame (negative inside)."""
        from .surface import sdf_volume

        return sdf_volume(model, resolution)

    def save(self, model: TrainedModel, path: str | Path) -> Path:
        from .checkpoint import save_checkpoint

        return save_checkpoint(model, path)

    def load(self, path: str | Path, device: str = "cpu") -> TrainedModel:
        from .checkpoint import load_checkpoint

        return load_checkpoint(path, device)

    def owns_checkpoint(self, folder: Path) -> bool:
        from viewer.plugins.checkpoint import stored_config

        return super().owns_checkpoint(folder) and (stored_config(folder) or {}).get("format") == FORMAT


PLUGIN = IDRPlugin()
