"""The built-in demo scenes (``main.py demo [NAME]``), generated or read from files that PyPI
packages ship; no downloads. Every object gets a ``demo:NAME/INDEX`` source so scene files can
restore it.

- ``default``: a CT phantom with organ labels, volume-rendered, and a textured globe.
- ``segmentation``: two generated CT phantom cases with labels, ready for the Segmentation panel.
- ``brain``: the MNI152 T1 that nilearn ships, with grey/white-matter labels from its maps.
- ``rendering``: a specular capture of pyvista's textured globe (100 training, 20 held-out
  views), generated once and cached, with the mesh it was rendered from: ready for the Neural
  Rendering panel.
- ``lesions``: a CT crop of an unseen phantom patient with one synthetic lesion, and its true box
  (a boxes layer, score 1): for the Lesions panel, whose "Demo cases" trains on other patients.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMOS", "demo_objects", "demo_source"]

DEMOS = ("default", "segmentation", "brain", "rendering", "lesions")


def _build(name: str) -> list[tuple[Any, dict]]:
    if name == "default":
        from .demo import demo_layers

        objs = demo_layers()
        return [(o, {"render_mode": "ct_bone"} if getattr(o, "modality", "") == "CT" else {}) for o in objs]
    if name == "segmentation":
        from .phantom import phantom_cases

        out: list[tuple[Any, dict]] = []
        for case in phantom_cases(2, first_seed=0):
            out += [(case.image, {"visible": not out}), (case.labels, {"visible": not out})]
        return out
    if name == "brain":
        from .brain import mni152_case

        case = mni152_case()
        return [(case.image, {}), (case.labels, {"opacity": 0.35})]
    if name == "rendering":
        from .rendering import rendering_capture
        from ..io import load_path

        folder = rendering_capture()
        mesh, views = load_path(folder / "mesh.obj"), load_path(folder)
        mesh.name = "globe mesh"  # names a person reads, not the cache folder's key
        order = {"train": 0, "val": 1, "test": 2}
        n = {s: len(views.split(s)) for s in sorted(views.splits, key=lambda s: (order.get(s, 3), s))}
        views.name = "globe photos (" + ", ".join(f"{k} {v}" for k, v in n.items()) + ")"
        return [(mesh, {}), (views, {})]
    if name == "lesions":
        from ..model.boxes import Boxes
        from .lesions import TEST_SEED, lesion_crop

        crop = lesion_crop(TEST_SEED, lesion=True, crop=48)
        crop.volume.name = "CT crop with a lesion"
        truth = Boxes(crop.boxes, [1.0] * len(crop.boxes), ["lesion"] * len(crop.boxes), name="true lesion box")
        return [(crop.volume, {}), (truth, {"show_scores": False})]
    raise KeyError(f"no demo named {name!r}; choose from {', '.join(DEMOS)}")


def demo_objects(name: str = "default") -> list[tuple[Any, dict]]:
    """(model object, display state) pairs of a demo scene, each with its ``demo:`` source."""
    objs = _build(name)
    for i, (obj, _) in enumerate(objs):
        obj.source = f"demo:{name}/{i}"
    return objs


def demo_source(source: str) -> Any:
    """The object a ``demo:NAME/INDEX`` source stands for (scene files)."""
    try:
        name, index = source[len("demo:"):].split("/")
        return demo_objects(name)[int(index)][0]
    except (ValueError, IndexError, KeyError):
        from ..model.errors import LoadError

        raise LoadError(source, "unknown demo data") from None
