"""Running work side by side on one machine.

    with process_pool(2) as pool:          # spawned workers that die with this process
        results = list(pool.map(fn, items))
    with torch_threads(1):                 # torch's thread count for a block, restored afterwards
        train()

Float results on CPU depend on torch's thread count, so code that must be reproducible across
machines fixes it rather than taking the machine's core count.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor


def _die_with_parent() -> None:
    """Worker initializer: on Linux, the worker is killed when the process that started it dies (even
    by SIGKILL), so a killed run leaves no orphan still computing or writing to a cache."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` spawned processes (spawn, not fork: torch and OpenMP state do not survive
    a fork) that end when this process ends."""
    return ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_die_with_parent
    )


def check_workers(workers: int | None) -> int:
    """A worker count (None: 1); anything but a positive int is a one-line error."""
    from loraport.errors import LoraportError

    if workers is None:
        return 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise LoraportError(f"workers={workers!r}: need an integer >= 1")
    return workers


def cpu_count() -> int:
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch threads (None: leave the count alone)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
