"""Files -> model objects. One entry point, :func:`load`, picks a reader by name and content.

Readers are plain functions ``Path -> data`` registered by file-name pattern (as napari's
readers are); every failure is a :class:`~viewer.model.LoadError` with a one-line message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..model.errors import LoadError
from ..model.labels import LabelMap
from ..model.volume import Volume
from .common import atomic_path, require_file

__all__ = ["load", "load_path", "kind_of", "VOLUME_SUFFIXES", "MESH_SUFFIXES", "POINT_SUFFIXES",
           "save_nifti", "atomic_path", "FILE_FILTER"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".hdr", ".img", ".hdr.gz", ".img.gz", ".nrrd", ".nhdr", ".mha", ".mhd",
                   ".dcm", ".vti")
# .vtk is a mesh unless its DATASET line says image grid (STRUCTURED_POINTS): see kind_of
MESH_SUFFIXES = (".obj", ".stl", ".vtk", ".vtp", ".ply")
POINT_SUFFIXES = (".xyz", ".pts", ".las", ".laz", ".ply")
FILE_FILTER = (
    "All supported (*.nii *.nii.gz *.hdr *.hdr.gz *.nrrd *.nhdr *.mha *.mhd *.dcm *.vti *.obj *.stl *.vtk "
    "*.vtp *.ply *.xyz *.pts *.las *.laz *.json);;Volumes (*.nii *.nii.gz *.hdr *.hdr.gz *.nrrd *.nhdr *.mha "
    "*.mhd *.dcm *.vti *.vtk);;"
    "Meshes (*.obj *.stl *.vtk *.vtp *.ply);;Point clouds (*.ply *.xyz *.pts *.las *.laz);;"
    "Scenes (*.lucid3d.json *.json);;All files (*)"
)
_DOUBLE_SUFFIXES = (".nii.gz", ".hdr.gz", ".img.gz")


# ValueError covers UnicodeDecodeError, zlib errors are what gzip streams raise, RuntimeError
# is how SimpleITK and VTK report a file they cannot parse


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return next((s for s in _DOUBLE_SUFFIXES if name.endswith(s)), path.suffix.lower())


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


COLMAP_POINT_FILES = ("points3d.txt", "points3d.bin")  # lower-cased names of COLMAP's sparse points


def kind_of(path: str | Path) -> str:
    """'volume', 'mesh', 'points', 'mesh-or-points' (PLY), 'dicom', 'viewset' or 'scene'.

    A legacy ``.vtk`` file is a 'volume' when its header's DATASET line says STRUCTURED_POINTS
    (an image grid; read without VTK), else a 'mesh'; ``.vti`` (XML ImageData) is a 'volume'.

    'viewset' (posed photos, :mod:`viewer.io.photosets`): a ``transforms*.json`` file, or a folder
    holding one or a COLMAP model (``cameras.txt``/``images.txt`` there, in ``sparse/0/`` or in
    ``sparse/``). Other folders are 'dicom'; other ``.json`` files are Lucid3D scene files.
    A COLMAP ``points3D.txt``/``.bin`` is 'points'.
    """
    path = Path(path)
    if path.is_dir():
        from .photosets import is_viewset_path
        return "viewset" if is_viewset_path(path) else "dicom"
    if path.name.lower() in COLMAP_POINT_FILES:
        return "points"
    suf = _suffix(path)
    if suf == ".ply":
        return "mesh-or-points"
    if suf == ".json":
        from .photosets import is_viewset_path
        return "viewset" if is_viewset_path(path) else "scene"
    if suf == ".dcm" or (suf not in VOLUME_SUFFIXES + MESH_SUFFIXES + POINT_SUFFIXES and _is_dicom_file(path)):
        return "dicom"
    if suf in VOLUME_SUFFIXES:
        return "volume"
    if suf == ".vtk":
        from .vtkimage import is_vtk_image
        return "volume" if is_vtk_image(path) else "mesh"
    if suf in MESH_SUFFIXES:
        return "mesh"
    if suf in POINT_SUFFIXES:
        return "points"
    return "unknown"


def _readers() -> dict[str, Callable[..., Any]]:
    # imported lazily so that `main.py info x.nii` never pays for the mesh or DICOM stacks
    from . import nifti

    def dicom(path: Path, **kw: Any):
        from .dicom import load_dicom
        return load_dicom(path, **kw)

    def itk(path: Path, **kw: Any):
        from .itkimage import load_itk
        return load_itk(path)

    def nrrd(path: Path, **kw: Any):
        from .nrrdfile import load_nrrd
        return load_nrrd(path)

    def mesh(path: Path, **kw: Any):
        from .meshes import load_mesh_or_points
        return load_mesh_or_points(path)

    def vtk_image(path: Path, **kw: Any):
        from .vtkimage import load_vtk_image
        return load_vtk_image(path)

    def vtk_legacy(path: Path, **kw: Any):  # one suffix, two kinds: the DATASET line decides
        from .vtkimage import is_vtk_image
        return vtk_image(path) if is_vtk_image(path) else mesh(path)

    def points(path: Path, **kw: Any):
        from .points import load_points
        return load_points(path)

    def viewset(path: Path, **kw: Any):
        from .photosets import load_viewset
        return load_viewset(path)

    return {
        ".nii": nifti.load_nifti, ".nii.gz": nifti.load_nifti, ".hdr": nifti.load_nifti,
        ".img": nifti.load_nifti, ".hdr.gz": nifti.load_nifti, ".img.gz": nifti.load_nifti,
        ".nrrd": nrrd, ".nhdr": nrrd, ".mha": itk, ".mhd": itk, ".vti": vtk_image,
        ".obj": mesh, ".stl": mesh, ".vtk": vtk_legacy, ".vtp": mesh, ".ply": mesh,
        ".xyz": points, ".pts": points, ".las": points, ".laz": points, "dicom": dicom,
        "viewset": viewset,
    }


def load_path(path: str | Path, *, as_labels: bool = False, series: str | None = None) -> Any:
    """Load one file or folder into a Volume, LabelMap, Mesh, PointCloud or ViewSet.

    Parameters
    ----------
    path : a file, or a folder holding a DICOM series; a ``transforms*.json`` or a folder with
        transforms files or a COLMAP model gives a :class:`~viewer.model.viewset.ViewSet`.
    as_labels : read an integer volume as a ``LabelMap`` (refused for non-integer data).
    series : for DICOM folders, the SeriesInstanceUID to load; default: the largest series
        (``volume.meta['note']`` then says which one was taken and what else was there).

    Raises
    ------
    LoadError : anything wrong with the input, as ``"PATH: reason"`` on one line.
    """
    path = Path(path)
    require_file(path)
    kind = kind_of(path)
    if kind == "scene":
        raise LoadError(path, "this is a scene file: open it with File > Open scene or `main.py PATH`")
    if kind == "unknown":
        raise LoadError(path, f"unsupported format {path.suffix or '(no extension)'}")
    if path.name.lower() in COLMAP_POINT_FILES:  # a COLMAP model's sparse points, with colours
        from .colmap import load_colmap_points as reader
    else:
        reader = _readers()[kind if kind in ("dicom", "viewset") else _suffix(path)]
    from .guards import reading

    with reading(path, kind):
        data = reader(path, series=series) if kind == "dicom" else reader(path)
    if as_labels:
        if not isinstance(data, Volume):
            raise LoadError(path, "only a volume can be opened as labels")
        try:
            data = LabelMap.from_volume(data)
        except ValueError as exc:
            raise LoadError(path, str(exc)) from None
        from .labelfiles import labels_with_sidecar

        data = labels_with_sidecar(data, path)  # names and colours from MASK.txt / MASK.ctbl
    return data


def load(path: str | Path, **kw: Any) -> Any:
    """Alias of :func:`load_path`."""
    return load_path(path, **kw)


def save_nifti(data, path, protect=()):
    from .nifti import save_nifti as _save
    return _save(data, path, protect=protect)
