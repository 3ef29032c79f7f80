"""Sandbox uids (root only): one per run, locked across every process on the machine, given back
once nothing runs under it any more (or quarantined), and swept of what a dead evaluator left.

Sandboxed programs run under a uid of their own (like `isolate`): RLIMIT_NPROC then counts only
that program's processes, and concurrent sandboxes cannot signal each other."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import stat
import tempfile
import threading
import time
import warnings
from functools import cache
from pathlib import Path

from loraport.errors import SandboxError
from loraport.sandbox import _cgroup, _host

_FIRST_UID = 60000
_UID_SLOTS = 1000
WORK_PREFIX = "loraport-sbx-"

#: Guards this module's state.
_state_lock = threading.Lock()
_uids_in_use: dict[int, int] = {}  # uid -> the descriptor holding its lock file
#: uids this process keeps claimed because something of a run under them could not be killed or
#: reaped (uid -> why); never handed out again by this process. See `isolation()`.
_quarantined: dict[int, str] = {}
_swept = False
#: Lock files that make a sandbox uid one run's alone across every process on the machine (bench
#: workers each run programs): an flock, dropped by the kernel when its process dies.
_UID_LOCKS = Path("/run/loraport-sandbox-uids")


@cache
def _id_taken(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        pass
    try:
        grp.getgrgid(uid)
        return True
    except KeyError:
        return False


def _lock_dir() -> Path:
    """The uid lock folder, made root-only; anything else at its path is refused, not followed."""
    try:
        _UID_LOCKS.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(_UID_LOCKS)
    except OSError as exc:
        raise SandboxError(f"cannot make the sandbox uid lock folder {_UID_LOCKS}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise SandboxError(f"{_UID_LOCKS}: not a private folder of this user; remove it")
    return _UID_LOCKS


def _claim(uid: int) -> int | None:
    """A descriptor holding `uid`'s lock when no other process holds it, else None."""
    import fcntl

    fd = os.open(_lock_dir() / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _sweep_stale() -> None:
    """Once per process, before its first run: whatever a previous, dead evaluator left under a
    sandbox uid that no live process holds (processes, cgroups, work dirs) is killed and removed.
    Only uids the sandbox has used since boot (a lock file of theirs exists): another tool's boxes
    in the same uid range are none of its business."""
    global _swept
    if _swept:
        return
    _swept = True
    ours = _lock_dir()
    uids = {
        u
        for u in _uids_with_processes()
        if _FIRST_UID <= u < _FIRST_UID + _UID_SLOTS and (ours / str(u)).exists()
    }
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        head = name[len(WORK_PREFIX) :].split("-", 1)[0]
        if name.startswith(WORK_PREFIX + "u") and head[1:].isdigit():
            uids.add(int(head[1:]))
    for parent in _cgroup.probe().parents.values():
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            if name.startswith("u") and name[1:].isdigit():
                uids.add(int(name[1:]))
    for uid in sorted(uids - set(_uids_in_use)):
        fd = _claim(uid)
        if fd is None:
            continue  # a live evaluator's run
        try:
            reap(uid)
            _cgroup.sweep(uid)
            for name in os.listdir(tmp):
                if name.startswith(f"{WORK_PREFIX}u{uid}-"):
                    _host.remove_tree(os.path.join(tmp, name))
        except OSError as exc:
            warnings.warn(f"sandbox: cannot clear what a dead run left under uid {uid}: {exc}", stacklevel=2)
        finally:
            os.close(fd)


def _uids_with_processes() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.add(os.stat(f"/proc/{entry}").st_uid)
            except OSError:
                continue
    return found


def acquire_uid() -> int:
    """A sandbox uid of this run's own, locked machine-wide until `release_uid` (the process's
    first call sweeps what dead evaluators left first)."""
    offset = (os.getpid() * 37) % _UID_SLOTS
    with _state_lock:
        _sweep_stale()
        for i in range(_UID_SLOTS):
            uid = _FIRST_UID + (offset + i) % _UID_SLOTS
            if uid in _uids_in_use or _id_taken(uid):
                continue
            fd = _claim(uid)
            if fd is not None:
                _uids_in_use[uid] = fd
                return uid
    raise SandboxError(f"no free sandbox uid in {_FIRST_UID}..{_FIRST_UID + _UID_SLOTS - 1}")


def release_uid(uid: int, *, reaped: bool = False) -> str | None:
    """Let `uid` serve another run, once nothing of this one runs under it any more (`reaped`: the
    caller has just made sure). A uid that still has processes (say zombies nobody reaps) stays
    claimed by this process, in quarantine (they would count against the next run's process
    limit); the reason is returned and warned."""
    if not reaped and not reap(uid):
        return quarantine(uid)
    with _state_lock:
        fd = _uids_in_use.pop(uid, None)
    if fd is not None:
        os.close(fd)  # drops the lock
    return None


def quarantined() -> dict[int, str]:
    """The uids this process keeps out of use (uid -> why), see `isolation()`."""
    with _state_lock:
        return dict(_quarantined)


def quarantine(uid: int) -> str:
    """Keep `uid` claimed for good (by this process) and say so."""
    why = f"sandbox uid {uid} quarantined: processes of its run could not be killed and reaped"
    with _state_lock:
        _quarantined[uid] = why
    warnings.warn(why, RuntimeWarning, stacklevel=3)
    return why


def _processes_of(uid: int) -> dict[int, str]:
    """pid -> state letter of every process whose owner is `uid`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat", "rb") as fh:
                found[int(entry)] = fh.read().rsplit(b")", 1)[1].split()[0].decode()
        except (OSError, IndexError):
            continue
    return found


def reap(uid: int, within_s: float = 5.0) -> bool:
    """SIGKILL whatever still runs under a finished run's uid and wait until nothing is left; True
    then. A PID namespace's teardown normally leaves nothing, but it finishes asynchronously when
    the bootstrap itself was killed, and without a PID namespace a daemonised child survives.
    False when only unreaped zombies remain (after a short grace) or the time is up."""
    deadline = time.monotonic() + within_s
    grace = time.monotonic() + 0.5
    while True:
        procs = _processes_of(uid)
        live = [pid for pid, state in procs.items() if state != "Z"]
        if not procs:
            return True
        now = time.monotonic()
        if now >= deadline or (not live and now >= grace):
            return False
        for pid in live:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
