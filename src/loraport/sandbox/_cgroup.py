"""Whole-run limits: one cgroup per sandbox start (a run, or a batch of runs one after another).

The parent moves the bootstrap into the run's cgroup before the bootstrap forks anything, so the init,
the program and everything the program starts are in it: together they cannot hold more than the
memory limit (the kernel's OOM killer ends one of them inside the cgroup), start more than the
pids limit, or use more than one CPU. After the run the parent kills whatever is still in it and
removes it.

cgroup v2 is used where the memory and pids controllers can be delegated to a folder under this
process's own cgroup (the root cgroup of a container's cgroup namespace, or a delegated subtree);
otherwise cgroup v1 where its memory and pids hierarchies are mounted and writable (hybrid hosts,
like this project's CI machines). Neither: `probe()` says why and runs have per-process rlimits
only (see docs/sandbox.md).

Run cgroups are named after the sandbox uid (`u60012`): a uid is one run's alone across the machine
(see runner._claim), so a leftover cgroup of a uid being claimed belongs to a dead evaluator.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from functools import cache

_DIR = "loraport-sandbox"
_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Support:
    """How this machine bounds a run: version "v2", "v1" or None (with `reason`), and for each
    controller used the parent folder under which run cgroups are made."""

    version: str | None
    parents: dict[str, str]
    reason: str = ""


def _read(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read()


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    rows = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _, opts = [*right.split(), "", "", ""][:3]
            if fstype in ("cgroup", "cgroup2"):
                rows.append((left.split()[4], fstype, opts.split(",")))
    return rows


def _own_paths() -> dict[str, str]:
    """controller name ("" for v2) -> this process's cgroup path."""
    out = {}
    for line in _read("/proc/self/cgroup").splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else [""]:
            out[name] = path
    return out


def _v2(mounts: list, own: dict[str, str]) -> Support | None:
    point = next((m for m, fs, _ in mounts if fs == "cgroup2"), None)
    if point is None or "" not in own:
        return None
    base = os.path.normpath(point + own[""])
    have = set(_read(os.path.join(base, "cgroup.controllers")).split())
    if not {"memory", "pids"} <= have:
        return None
    want = [c for c in _CONTROLLERS if c in have]
    enabled = set(_read(os.path.join(base, "cgroup.subtree_control")).split())
    if not set(want) <= enabled:
        try:  # only possible where `base` holds no processes of its own (or is the root cgroup)
            _write(os.path.join(base, "cgroup.subtree_control"), " ".join(f"+{c}" for c in want))
        except OSError:
            return None
    parent = os.path.join(base, _DIR)
    os.makedirs(parent, exist_ok=True)
    _write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in want))
    return Support("v2", {"": parent})


def _v1(mounts: list, own: dict[str, str]) -> Support | None:
    parents = {}
    for ctl in _CONTROLLERS:
        point = next((m for m, fs, opts in mounts if fs == "cgroup" and ctl in opts), None)
        if point is None or ctl not in own:
            continue
        parent = os.path.normpath(point + own[ctl]) + "/" + _DIR
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError:
            continue
        parents[ctl] = parent
    if not {"memory", "pids"} <= set(parents):
        return None
    return Support("v1", parents)


@cache
def probe() -> Support:
    """Which cgroups this process may make for runs (root only; probed once)."""
    if os.geteuid() != 0:
        return Support(None, {}, "not root: no cgroup per run")
    try:
        mounts, own = _mounts(), _own_paths()
        found = _v2(mounts, own) or _v1(mounts, own)
    except OSError as exc:
        return Support(None, {}, f"cgroups unusable: {exc}")
    return found or Support(None, {}, "no writable cgroup v2 or v1 memory+pids hierarchy")


def _procs(path: str) -> list[int]:
    try:
        return [int(p) for p in _read(os.path.join(path, "cgroup.procs")).split()]
    except (OSError, ValueError):
        return []


def _kill_and_remove(path: str, within_s: float = 5.0) -> None:
    """SIGKILL everything in the cgroup at `path`, then remove it. Raises OSError if it cannot."""
    if not os.path.isdir(path):
        return
    deadline = time.monotonic() + within_s
    try:
        _write(os.path.join(path, "cgroup.kill"), "1")  # v2: the kernel kills all of it at once
    except OSError:
        pass
    while True:
        for pid in _procs(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.002)


class RunCgroup:
    """The cgroup(s) of one sandbox start."""

    def __init__(self, support: Support, uid: int) -> None:
        self.paths = [os.path.join(parent, f"u{uid}") for parent in support.parents.values()]
        self.version = support.version
        self.support = support

    @classmethod
    def create(cls, uid: int, memory_bytes: int, pids: int) -> RunCgroup | None:
        """A fresh cgroup for `uid`'s run with these limits (and one CPU), or None where the machine
        has none. A leftover of the same name (a dead evaluator's) is killed and replaced."""
        support = probe()
        if support.version is None:
            return None
        cg = cls(support, uid)
        cg.remove()
        for path in cg.paths:
            os.mkdir(path, 0o700)
        try:
            cg._limit(memory_bytes, pids)
        except OSError:
            cg.remove()
            raise
        return cg

    def _limit(self, memory_bytes: int, pids: int) -> None:
        if self.version == "v2":
            (path,) = self.paths
            _write(os.path.join(path, "memory.max"), str(memory_bytes))
            for name, value in (("memory.swap.max", "0"), ("cpu.max", f"{_CPU_PERIOD_US} {_CPU_PERIOD_US}")):
                if os.path.exists(os.path.join(path, name)):
                    _write(os.path.join(path, name), value)
            _write(os.path.join(path, "pids.max"), str(pids))
            return
        by_ctl = dict(zip(self.support.parents, self.paths, strict=True))
        mem = by_ctl["memory"]
        _write(os.path.join(mem, "memory.limit_in_bytes"), str(memory_bytes))
        if os.path.exists(os.path.join(mem, "memory.memsw.limit_in_bytes")):
            _write(os.path.join(mem, "memory.memsw.limit_in_bytes"), str(memory_bytes))
        _write(os.path.join(by_ctl["pids"], "pids.max"), str(pids))
        if "cpu" in by_ctl:
            _write(os.path.join(by_ctl["cpu"], "cpu.cfs_period_us"), str(_CPU_PERIOD_US))
            _write(os.path.join(by_ctl["cpu"], "cpu.cfs_quota_us"), str(_CPU_PERIOD_US))

    def add(self, pid: int) -> None:
        """Move process `pid` (the bootstrap, before it forks anything) into the run's cgroups."""
        for path in self.paths:
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def remove(self) -> None:
        """Kill what is left in the run's cgroups and remove them; OSError if one cannot go."""
        errors = []
        for path in self.paths:
            try:
                _kill_and_remove(path)
            except OSError as exc:
                errors.append(f"{path}: {exc}")
        if errors:
            raise OSError("cannot remove the run's cgroup: " + "; ".join(errors))


def sweep(uid: int) -> None:
    """Remove a dead evaluator's cgroup for `uid` (the caller holds `uid`'s lock)."""
    support = probe()
    if support.version is not None:
        RunCgroup(support, uid).remove()
