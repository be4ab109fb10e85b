"""Long VTK calls made from a worker thread without holding Python's GIL.

VTK's Python wrappers keep the GIL for the whole of every C++ call, so a worker thread running
a two-second VTK filter freezes the UI thread for those two seconds as surely as if the UI had
run it (measured: a 1.76 s gap in a 2 ms timer beside ``PerVolumeInitialization`` in a thread).
The wheels' C++ symbols are exported, so the same member function can be called through
``ctypes``, which releases the GIL for the call (Itanium C++ ABI: a member function is a plain
function whose first argument is ``this``): the same gradients, the UI thread keeps running
(a 32 ms worst gap for the same call, ``tests/compute/test_nogil.py``).

Only non-virtual entry points of known signature are called this way, and every call falls back
to the ordinary wrapped call when the library, the symbol or the pointer is not what is expected
(another VTK build): slower for the UI, never wrong.
"""

from __future__ import annotations

import ctypes
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

__all__ = ["address", "call_without_gil", "per_volume_initialization", "update"]

_THIS = re.compile(r"_?([0-9a-fA-F]+)_p_vtk")


def address(obj: Any) -> int | None:
    """The C++ address of a wrapped VTK object (``'_00007f..._p_vtkVolume'``), else None."""
    m = _THIS.match(getattr(obj, "__this__", "") or "")
    return int(m.group(1), 16) if m else None


@lru_cache(maxsize=None)
def _function(module: str, library: str, symbol: str, nargs: int) -> Callable | None:
    """The exported C++ function ``symbol`` from ``library`` beside the wrapper ``module``."""
    try:
        import importlib

        wrapped = importlib.import_module(module)
        lib = ctypes.CDLL(str(Path(wrapped.__file__).with_name(library)))
        fn = getattr(lib, symbol)
    except (ImportError, OSError, AttributeError, TypeError):
        return None
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p] * nargs
    return fn


def call_without_gil(fn: Callable | None, objects: tuple[Any, ...], fallback: Callable[[], Any]) -> bool:
    """Call ``fn(&objects[0], &objects[1], ...)`` with the GIL released; ``fallback()`` instead
    when ``fn`` or an address is missing. True when the GIL was released."""
    ptrs = [address(o) for o in objects]
    if fn is None or any(p is None for p in ptrs):
        fallback()
        return False
    fn(*ptrs)
    return True


def per_volume_initialization(mapper: Any, renderer: Any, volume: Any) -> bool:
    """``vtkFixedPointVolumeRayCastMapper::PerVolumeInitialization(renderer, volume)``: gradients
    and empty-space blocks of the mapper's input, the slow part of its first frame."""
    fn = _function("vtkmodules.vtkRenderingVolume", "libvtkRenderingVolume.so",
                   "_ZN32vtkFixedPointVolumeRayCastMapper23PerVolumeInitializationEP11vtkRendererP9vtkVolume", 3)
    if not mapper.IsA("vtkFixedPointVolumeRayCastMapper"):
        raise TypeError(f"not a fixed-point ray cast mapper: {mapper.GetClassName()}")
    return call_without_gil(fn, (mapper, renderer, volume),
                            lambda: mapper.PerVolumeInitialization(renderer, volume))


def update(algorithm: Any) -> bool:
    """``vtkAlgorithm::Update()`` (runs the pipeline up to ``algorithm``) without the GIL."""
    fn = _function("vtkmodules.vtkCommonExecutionModel", "libvtkCommonExecutionModel.so",
                   "_ZN12vtkAlgorithm6UpdateEv", 1)
    return call_without_gil(fn, (algorithm,), algorithm.Update)
