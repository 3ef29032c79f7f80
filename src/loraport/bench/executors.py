"""Executors run a batch of independent cells; the runner calls them stage by stage
(train, then port, then eval), so every cell's dependencies are finished before it starts.

    local   on this machine. workers=1 (default): one cell at a time in this process, torch on
            `threads` (default: every core). workers=N: N cells side by side, each in a spawned
            process with `threads` torch threads (default: cores // N). Tiny models use many cores
            poorly, so a many-core machine gains from workers; on 2 vCPUs it gains nothing (two
            1-thread workers train each adapter 1.9-2x slower than one 2-thread cell). A cell that
            runs out of memory beside the others (N workers share one GPU) is run once more, alone,
            after the rest of its stage; only if it fails alone too is it a failed cell.
    ray     each cell a Ray task (`--address` for a cluster; a local Ray instance otherwise). Workers
            need the same loraport install and a filesystem shared with the run directory. On a
            GPU device each cell asks Ray for one whole GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from loraport.bench.cells import run_cell
from loraport.bench.plan import Cell
from loraport.bench.store import Store
from loraport.errors import LoraportError
from loraport.parallel import check_workers, cpu_count, process_pool
from loraport.registry import Registry

#: Executors by name ("local", "ray"): a factory returning a Runner whose `map(cells, store, done)`
#: computes cells with bench.cells.run_cell. `run_study(..., executor="ray")` picks one.
EXECUTORS: Registry[Callable[..., Runner]] = Registry("executor", LoraportError)


class Runner:
    def map(
        self, cells: Sequence[Cell], store: Store, on_done: Callable[[dict[str, Any]], None]
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


@EXECUTORS.register("local")
class LocalRunner(Runner):
    def __init__(self, threads: int | None = None, workers: int | None = None, **_: Any) -> None:
        self.workers = workers = check_workers(workers)
        self.threads = threads or (None if workers == 1 else max(1, cpu_count() // workers))
        self.pool: ProcessPoolExecutor | None = None

    def map(self, cells, store, on_done):
        out = []
        if self.workers == 1:
            for cell in cells:
                res = run_cell(cell, store, self.threads)
                on_done(res)
                out.append(res)
            return out
        if self.pool is None:
            self.pool = process_pool(self.workers)
        futures = {self.pool.submit(run_cell, c, store, self.threads): c for c in cells}
        again = []
        try:
            for fut in as_completed(futures):
                res = fut.result()
                if res.get("oom"):
                    again.append(futures[fut])
                    continue
                on_done(res)
                out.append(res)
            for cell in again:  # the stage's other cells are done: nothing else holds the memory now
                res = self.pool.submit(run_cell, cell, store, self.threads).result()
                res["retried_alone"] = True
                on_done(res)
                out.append(res)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


@EXECUTORS.register("ray")
class RayRunner(Runner):
    def __init__(
        self,
        address: str | None = None,
        threads: int | None = 1,
        num_cpus: int | None = None,
        device: str = "cpu",
        **_: Any,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise LoraportError("executor 'ray' needs Ray: pip install 'loraport[ray]'") from None
        self.ray = ray
        self.threads = threads
        self.started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False, include_dashboard=False)
                else:
                    ray.init(num_cpus=num_cpus, log_to_driver=False, include_dashboard=False)
            except Exception as e:  # ray raises ConnectionError, RuntimeError, ... for a bad address
                raise LoraportError(
                    f"ray: cannot reach a cluster at {address or 'a new local instance'} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                ) from None
            self.started = True
        # A cell on a GPU holds a whole one, so cells on one GPU never compete for its memory.
        self.task = ray.remote(num_cpus=1, num_gpus=0 if device == "cpu" else 1)(run_cell)

    def map(self, cells, store, on_done):
        pending = {self.task.remote(c, store, self.threads): c for c in cells}
        out = []
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                res = self.ray.get(ref)
                on_done(res)
                out.append(res)
        return out

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def check_ray_address(address: str) -> None:
    """Fail fast (before any work) when a Ray address cannot be reached."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            pass
    except (OSError, ValueError) as e:
        raise LoraportError(f"ray address {address!r} is unreachable ({e})") from None
