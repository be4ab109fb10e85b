"""Tests of the method plugins (training, inference, fitting, the CLI, torchrun, the contract).

``one_thread``: import it into a test module to run that module with one torch thread, in
this process and in the ``main.py`` processes it starts (``OMP_NUM_THREADS=1``). For 32^3
patches one thread was 3-6x faster per training step than two on the shared 2-core test
machine (spin-waiting intra-op threads under contention), and results do not depend on it.
``two_threads``: likewise two torch threads in this process (the renderers' fits).
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="module")
def two_threads():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(n)
