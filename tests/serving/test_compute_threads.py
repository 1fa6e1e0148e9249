"""Model work on the services' compute threads runs with the thread count the service set."""

from __future__ import annotations

import threading

import anyio
import pytest


def openmp_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {found["num_threads"] for found in threadpool_info() if found["internal_api"] == "openmp"}


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_compute_thread_gets_torchs_thread_count_not_every_core(one_torch_thread):
    from recsys.serving.service import LANES, Service

    plain: list[set[int]] = []
    thread = threading.Thread(target=lambda: plain.append(openmp_threads()))
    thread.start()
    thread.join()
    if plain[0] <= {1}:
        pytest.skip("OpenMP starts new threads with one thread here (one core, or OMP_NUM_THREADS=1)")

    async def computed() -> set[int]:
        service = Service.__new__(Service)  # only what `compute` uses
        service.limiters = {lane: anyio.CapacityLimiter(1) for lane in LANES}
        return await service.compute(openmp_threads)

    assert anyio.run(computed) == {1}
