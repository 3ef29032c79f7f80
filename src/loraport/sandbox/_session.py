"""One sandbox start's host-side resources: a uid of its own (root), a throw-away work dir, the
interpreter to run and what to bind-mount for it, a cgroup, and the host folders to hide.
`open_session` claims them; `close_session` kills what is left of the run and gives them back."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from loraport.errors import SandboxError
from loraport.sandbox import _cgroup, _host
from loraport.sandbox._types import RUN_OVERHEAD_PIDS, Limits

# Sandbox uids: claimed per run, locked machine-wide, swept of a dead evaluator's leftovers.
from loraport.sandbox._uids import WORK_PREFIX, acquire_uid, quarantine, reap, release_uid

_PYTHON_MOUNT = ".python"


def is_root() -> bool:
    return os.geteuid() == 0


def _world_reachable(path: str, *, need: int) -> bool:
    """Can a user who is neither owner nor in the group reach `path` with permission bits `need`?"""
    p = Path(path)
    try:
        for parent in reversed(p.parents):
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        return bool(os.stat(p).st_mode & need == need)
    except OSError:
        return False


def interpreter(python: str | None, switch_uid: bool) -> tuple[str, str | None]:
    """(interpreter path on the host, prefix to bind-mount into the sandbox or None)."""
    exe = os.path.realpath(python or sys.executable)
    if not os.path.isfile(exe):
        raise SandboxError(f"sandbox python {exe!r} does not exist")
    if not switch_uid:
        return exe, None
    exe_ok = _world_reachable(exe, need=stat.S_IROTH | stat.S_IXOTH)
    lib_ok = python is not None or _world_reachable(
        os.path.dirname(os.__file__), need=stat.S_IROTH | stat.S_IXOTH
    )
    if exe_ok and lib_ok:
        return exe, None
    prefix = os.path.realpath(sys.base_prefix if python is None else os.path.dirname(os.path.dirname(exe)))
    if os.path.commonpath([prefix, exe]) != prefix:
        raise SandboxError(
            f"sandbox python {exe!r} is not readable by other users and is not inside prefix {prefix!r}; "
            "pass python= an interpreter that other users can run"
        )
    return exe, prefix


@cache
def hidden_folders(exe: str, bind_prefix: str | None) -> list[str]:
    """The host folders to hide from a program run by `exe` (never one that holds the interpreter,
    its standard library or the prefix bind-mounted for it). Once per process and interpreter."""
    keep = [exe, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__)]
    return _host.covers([os.path.realpath(k) for k in [*keep, *([bind_prefix] if bind_prefix else [])]])


def _minimal_env(workdir: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
    }


@dataclass
class Session:
    """One sandbox start's host-side state: its uid (root mode), work dir, interpreter, cgroup and
    the host folders to hide."""

    root: bool
    uid: int | None
    workdir: str
    exe: str = ""
    bind: dict[str, str] | None = None
    env: dict[str, str] | None = None
    cgroup: _cgroup.RunCgroup | None = None
    covers: list[str] | None = None


def open_session(limits: Limits) -> Session:
    """A uid (as root), a throw-away work dir and a cgroup; `close_session` gives them back."""
    root = is_root()
    uid = acquire_uid() if root else None
    prefix = WORK_PREFIX if uid is None else f"{WORK_PREFIX}u{uid}-"
    try:
        ses = Session(root, uid, os.path.realpath(tempfile.mkdtemp(prefix=prefix)))
    except BaseException:
        if uid is not None:
            release_uid(uid)
        raise
    try:
        exe, bind_prefix = interpreter(limits.python, switch_uid=uid is not None)
        ses.env = _minimal_env(ses.workdir)
        ses.exe = exe
        if bind_prefix is not None:
            dst = os.path.join(ses.workdir, _PYTHON_MOUNT)
            ses.exe = os.path.join(dst, os.path.relpath(exe, bind_prefix))
            ses.bind = {"src": bind_prefix, "dst": dst}
            if os.path.isdir(os.path.join(bind_prefix, "lib")):
                ses.env["LD_LIBRARY_PATH"] = os.path.join(dst, "lib")
        ses.covers = hidden_folders(exe, bind_prefix)
        if uid is not None:
            pids = limits.max_processes + RUN_OVERHEAD_PIDS
            try:
                ses.cgroup = _cgroup.RunCgroup.create(uid, limits.run_memory_bytes(), pids)
            except OSError as exc:
                raise SandboxError(f"cannot make the run's cgroup: {exc}") from exc
        return ses
    except BaseException:
        close_session(ses)
        raise


def close_session(ses: Session) -> str | None:
    """Kill what is left of the run (its cgroup, its uid), remove its work dir without recursion,
    give the uid back (or quarantine it). None, or what could not be done: nothing raises here."""
    problems = []
    if ses.cgroup is not None:
        try:
            ses.cgroup.remove()
        except OSError as exc:
            problems.append(str(exc))
    if ses.uid is not None and not reap(ses.uid):
        # Something still runs under the uid: its work dir stays (it is within that uid's reach),
        # and so does the uid, out of use; the start-up sweep of a later process clears both.
        problems.append(quarantine(ses.uid))
    else:
        try:
            _host.remove_tree(ses.workdir)
        except Exception as exc:  # never lose a verdict to a clean-up
            problems.append(f"cannot remove the work dir {ses.workdir}: {type(exc).__name__}: {exc}")
        if ses.uid is not None and (why := release_uid(ses.uid, reaped=True)):
            problems.append(why)
    return "; ".join(p for p in problems if p) or None
