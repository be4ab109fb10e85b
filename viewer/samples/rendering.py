"""The neural-rendering sample: a specular capture of pyvista's textured globe, rendered once and
cached (:func:`rendering_capture`), and where such generated data is kept (:func:`cache_dir`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["rendering_capture", "globe_mesh_path", "cache_dir"]


def cache_dir() -> Path:
    """Where generated demo data is kept between runs: ``$LUCID3D_CACHE`` or ~/.cache/lucid3d."""
    import os

    root = os.environ.get("LUCID3D_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lucid3d")
    return Path(root)


def globe_mesh_path() -> Path:
    """pyvista's textured globe (a mesh with UVs; its Earth texture lies beside it)."""
    spec = importlib.util.find_spec("pyvista")
    return Path(spec.origin).parent / "examples" / "globe.vtk"


def rendering_capture(views: int = 120, test: int = 20, size: int = 256, specular: float = 0.5,
                      seed: int = 0) -> Path:
    """The neural-rendering demo scene: a specular capture of pyvista's textured globe
    (``views - test`` training and ``test`` held-out views, Blender layout), rendered once with
    ``capture`` and cached. ``bench/nr_fit.py`` measures on the same mesh and cameras with
    ``capture``'s procedural texture instead of the Earth image."""
    from ..compute.photoset import capture_dataset  # VTK: loaded only when a capture is made

    folder = cache_dir() / f"capture-globe-{views}-{test}-{size}-{specular:g}-{seed}"
    if not (folder / "transforms_test.json").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        import shutil
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix=".capture-", dir=folder.parent))
        try:
            texture = globe_mesh_path().parent / "2k_earth_daymap.jpg"
            capture_dataset(str(globe_mesh_path()), str(tmp / "scene"), views=views, size=size,
                            test_fraction=test / views, texture=str(texture), specular=specular, seed=seed)
            try:
                (tmp / "scene").rename(folder)  # atomic: another process may have won the race
            except OSError:
                if not (folder / "transforms_test.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder
