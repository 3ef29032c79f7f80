"""Many programs through one sandbox start (root with a PID namespace only).

Starting a sandbox costs more than running a short generated program: two interpreters, the
namespaces and the read-only remount of every mount. `run_batch` pays that once for many programs.
The sandbox's init runs them one after another, each exactly as `run_program` would run it (same
limits, uid, read-only tree, interpreter and wrapper), with its own fresh work dir and IPC
namespace; between two programs it kills and reaps everything else in the PID namespace and
gives it a fresh /dev/shm, so nothing one program leaves behind reaches the next (see `_boot.py`). The
init enforces each program's wall clock; the parent keeps a deadline for the whole batch and
gives back None for every program the batch did not finish, which `run_many` then runs alone.

Without root (no uid of the sandbox's own, so a program could reach the batch's other files) or
without a PID namespace (no way to kill everything a program left behind), batches are off and
every program gets a sandbox of its own.
"""

from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from loraport.errors import SandboxError
from loraport.sandbox._boot import CLONE_NEWNS, CLONE_NEWPID
from loraport.sandbox._capture import STATUS_CAP, lines, read_capped
from loraport.sandbox._session import Session, close_session, is_root, open_session
from loraport.sandbox._start import (
    check_source,
    classify,
    interpreter_argv,
    known_namespaces,
    namespaces,
    run_boot,
    run_one,
    sandbox_error,
)
from loraport.sandbox._types import Limits, SandboxResult

#: Programs per sandbox start in `run_many`: small enough that a few slow programs do not leave
#: a worker idle at the end, large enough that the start-up is paid rarely.
CHUNK = 24
_START_S = 10.0  # the batch's own start-up, on top of its programs' wall clocks
_PER_PROGRAM_S = 0.5  # set-up and clean-up around each program


def batchable() -> bool:
    """Whether this process may run programs in batches: root, and the kernel gave the sandbox a
    PID and a mount namespace (known after the first sandbox run)."""
    root = is_root()
    flags = known_namespaces(root)
    return root and flags is not None and flags & CLONE_NEWPID != 0 and flags & CLONE_NEWNS != 0


def _batch_wall(count: int, limits: Limits) -> float:
    """The whole batch's wall clock: every program's own, plus set-up."""
    return _START_S + count * (limits.timeout_s + _PER_PROGRAM_S)


def run_batch(sources: list[str], limits: Limits) -> list[SandboxResult | None]:
    """Run `sources` one after another in one sandbox; a result per source, None where the batch
    ended (deadline, crash) before that program did."""
    for source in sources:
        check_source(source)
    if not sources:
        return []
    namespaces()  # batchable() needs them known
    if not batchable():
        raise SandboxError(
            "run_batch needs root and a PID namespace (a uid of the batch's own, and a way to kill "
            "everything a program leaves behind); run_many gives each program its own sandbox here"
        )
    ses = open_session(limits)
    try:
        return _run_in(ses, sources, limits)
    finally:
        problem = close_session(ses)
        if problem:
            # The batch's own folder or cgroup (never a program's: each program's work dir is a tmpfs
            # that went with its umount). Every verdict above stands; the uid is quarantined if
            # something of the batch still runs.
            warnings.warn(f"sandbox batch clean-up: {problem}", RuntimeWarning, stacklevel=2)


def _run_in(ses: Session, sources: list[str], limits: Limits) -> list[SandboxResult | None]:
    src_dir = os.path.join(ses.workdir, "src")
    res_dir = os.path.join(ses.workdir, "res")
    for folder in (src_dir, res_dir):
        os.mkdir(folder, 0o700)
    for i, source in enumerate(sources):
        with open(os.path.join(src_dir, f"{i}.py"), "w", encoding="utf-8") as fh:
            fh.write(source)
    os.chmod(ses.workdir, 0o700)
    batch = {
        "count": len(sources),
        "timeout_s": limits.timeout_s,
        "output_cap": limits.max_output_bytes,
        "result_cap": STATUS_CAP,
    }
    wall = _batch_wall(len(sources), limits)
    argv = interpreter_argv(ses, limits, "{RESULT_FD}")  # the init fills in each program's
    boot = run_boot(ses, limits, {"batch": batch, "argv": argv}, wall)
    results: list[SandboxResult | None] = [None] * len(sources)
    done = []
    for event, rest in boot.status:
        if event == "setup_error":
            raise SandboxError(f"sandbox setup failed: {rest}")
        if event in ("done", "error"):
            done.append((event, rest))
    if boot.timed_out and done:
        # The batch was killed: the last program reported may have been ended by that kill.
        done.pop()
    for event, rest in done:
        if event == "error":
            index, _, message = rest.partition(" ")
            results[int(index)] = sandbox_error(message, None)
            continue
        index, status, timed_out, seconds = rest.split()
        i = int(index)
        base = os.path.join(res_dir, index)
        results[i] = classify(
            root=ses.root,
            timed_out=timed_out == "1",
            status=[] if status == "-" else [("exit", status)],
            result=lines(read_capped(base + ".res", STATUS_CAP).bytes()),
            boot_rc=boot.returncode,
            out=read_capped(base + ".out", limits.max_output_bytes),
            err=read_capped(base + ".err", limits.max_output_bytes),
            wall=float(seconds),
        )
    return results


def run_many(
    sources: list[str], workers: int | None = None, *, batch: bool = True, **limits: Any
) -> list[SandboxResult]:
    """run_program over `sources` in parallel (default and maximum: os.cpu_count() at a time);
    results come back in the order of `sources`. `limits` are run_program's keyword arguments.
    batch: where `batchable()`, run the programs in batches of up to CHUNK per sandbox start (the
    same isolation per program, at a fraction of the start-up cost); False gives each its own."""
    if isinstance(sources, str):
        raise SandboxError("run_many takes a list of program sources, got a single str")
    sources = list(sources)
    cpus = os.cpu_count() or 1
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SandboxError(f"run_many workers={workers!r} is invalid: need an integer >= 1")
    try:
        lim = Limits(**limits)
    except TypeError as exc:
        raise SandboxError(f"run_many got an unknown sandbox limit: {exc}") from None
    if not sources:
        return []
    n = min(workers or cpus, cpus, len(sources))
    results: list[SandboxResult | None] = [None] * len(sources)
    todo = list(range(len(sources)))
    if batch and len(sources) > 1:
        if known_namespaces(is_root()) is None:  # the first program alone tells what the kernel allows
            results[0] = run_one(sources[0], lim)
            todo = todo[1:]
        if batchable():
            # Several chunks per worker, so that a few slow programs do not leave one worker busy alone.
            size = max(1, min(CHUNK, math.ceil(len(todo) / (4 * n))))
            chunks = [todo[i : i + size] for i in range(0, len(todo), size)]

            def run_chunk(chunk: list[int]) -> None:
                try:
                    done = run_batch([sources[i] for i in chunk], lim)
                except SandboxError:
                    return  # its programs run alone below, where a failure is their own
                for i, result in zip(chunk, done, strict=True):
                    results[i] = result

            _map(run_chunk, chunks, n)
            todo = [i for i, result in enumerate(results) if result is None]

    def run_alone(i: int) -> None:
        results[i] = run_one(sources[i], lim)

    _map(run_alone, todo, n)
    return [r for r in results if r is not None]


def _map(fn: Any, jobs: list, n: int) -> None:
    if min(n, len(jobs)) <= 1:
        for job in jobs:
            fn(job)
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="sandbox") as pool:
        list(pool.map(fn, jobs))
