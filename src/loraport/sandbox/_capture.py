"""Output capture for a sandbox start: read its pipes as they come, each kept to a cap, while the
wall clock is enforced on the process group; and read back what a batched program left in files."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

#: Kept of a status or result pipe (the program's stdout and stderr have `Limits.max_output_bytes`).
STATUS_CAP = 64 * 1024
_KILL_GRACE_S = 0.25
_DRAIN_GRACE_S = 1.0


def killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def lines(data: bytes) -> list[tuple[str, str]]:
    """(event, rest) per line of a status or result pipe."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        event, _, rest = line.partition(" ")
        out.append((event, rest))
    return out


class Capture:
    """Bytes read from one pipe, keeping at most `cap` of them (the rest is read and dropped)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        room = self.cap - self.size
        if len(data) > room:
            self.truncated = True
            data = data[: max(room, 0)]
        if data:
            self.chunks.append(data)
            self.size += len(data)

    def bytes(self) -> bytes:
        return b"".join(self.chunks)


def pump(proc: subprocess.Popen, pipes: dict[int, Capture], deadline: float) -> bool:
    """Read every pipe until EOF while enforcing the wall clock. True when the deadline killed it."""
    sel = selectors.DefaultSelector()
    for fd in pipes:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    timed_out = False
    stop_at: float | None = None  # after the process is gone, drain at most this long
    try:
        while sel.get_map():
            now = time.monotonic()
            if not timed_out and stop_at is None and now >= deadline:
                timed_out = True
                terminate(proc)
                stop_at = time.monotonic() + _DRAIN_GRACE_S
            if stop_at is None and proc.poll() is not None:
                stop_at = now + _DRAIN_GRACE_S  # escaped writers may hold a pipe open
            if stop_at is not None and now >= stop_at:
                break
            limit = (stop_at if stop_at is not None else deadline) - now
            for key, _ in sel.select(timeout=max(0.0, min(limit, 0.05))):
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    pipes[fd].add(data)
                else:
                    sel.unregister(fd)
    finally:
        sel.close()
    return timed_out


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (the bootstrap then SIGKILLs its child, which takes the whole PID
    namespace down), wait briefly, then SIGKILL the group."""
    killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    killpg(proc.pid, signal.SIGKILL)


def read_capped(path: str, cap: int) -> Capture:
    """The first `cap` bytes of the file at `path` (truncated when there is more; empty when it
    cannot be read)."""
    capture = Capture(cap)
    try:
        with open(path, "rb") as fh:
            capture.add(fh.read(cap))
            if fh.read(1):
                capture.truncated = True
    except OSError:
        pass
    return capture
