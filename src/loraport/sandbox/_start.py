"""One sandbox start: launch the bootstrap with a session's config, read its pipes until it ends
or its wall clock passes, and classify how the program ended. `run_one` is a whole run of one
program (session, start, clean-up); `batch.py` drives a start of many programs through `run_boot`
and `classify`. Also the process-wide record of which namespaces the kernel gives sandboxes."""

from __future__ import annotations

import marshal
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from loraport.errors import SandboxError
from loraport.sandbox import _host

# The clone flags are defined once, by the child-side boot script that passes them to unshare(2).
from loraport.sandbox._boot import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from loraport.sandbox._capture import STATUS_CAP, Capture, killpg, lines, pump, terminate
from loraport.sandbox._seccomp import program_filter
from loraport.sandbox._session import Session, close_session, is_root, open_session
from loraport.sandbox._types import Limits, Outcome, SandboxResult

_FULL = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
# Tried in order until the kernel accepts one; 0 (no namespaces) always works.
_ROOT_CANDIDATES = (
    _FULL,
    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET,
    CLONE_NEWNS | CLONE_NEWNET,
    CLONE_NEWNET,
    0,
)
_USER_CANDIDATES = (
    CLONE_NEWUSER | _FULL,
    CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET,
    CLONE_NEWUSER | CLONE_NEWNET,
    0,
)
_PROGRAM_NAME = "main.py"

# ---------------------------------------------------------------------------------------------
# Process-wide state: namespace support, probed once per privilege level.

_ns_lock = threading.Lock()
_ns_cache: dict[bool, int] = {}


def known_namespaces(root: bool) -> int | None:
    """The namespace flags sandboxes at this privilege level got, or None before the first run."""
    with _ns_lock:
        return _ns_cache.get(root)


def _ns_candidates(root: bool) -> list[int]:
    cands = list(_ROOT_CANDIDATES if root else _USER_CANDIDATES)
    known = known_namespaces(root)
    return cands if known is None else cands[cands.index(known) :]


def namespaces() -> int:
    """The namespace flags this process's sandboxes get (one trivial program probes them the first
    time; every run caches what it learnt)."""
    root = is_root()
    if known_namespaces(root) is None:
        run_one("pass\n", Limits(timeout_s=10.0))
    return known_namespaces(root) or 0


# ---------------------------------------------------------------------------------------------
# Starting the bootstrap


@cache
def _source(name: str) -> str:
    return (Path(__file__).resolve().parent / name).read_text(encoding="utf-8")


@dataclass
class Boot:
    """What one bootstrap run left on its pipes."""

    timed_out: bool
    returncode: int | None
    status: list[tuple[str, str]]
    result: list[tuple[str, str]]
    out: Capture
    err: Capture


def interpreter_argv(ses: Session, limits: Limits, result_fd: str) -> list[str]:
    flags = ["-I", "-B", "-X", "utf8"] + ([] if limits.site_packages else ["-S"])
    return [ses.exe, *flags, "-c", _source("_wrapper.py"), result_fd, _PROGRAM_NAME]


def run_boot(ses: Session, limits: Limits, extra: dict[str, Any], wall_s: float) -> Boot:
    """Start the bootstrap with the session's config plus `extra`, read its pipes until it ends or
    `wall_s` passes (then kill it), and make sure nothing of it outlives this call."""
    fds: list[int] = []
    try:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        st_r, st_w = os.pipe()
        go_r, go_w = os.pipe()  # the bootstrap waits on it until this process put it in its cgroup
        fds += [out_r, out_w, err_r, err_w, res_r, res_w, st_r, st_w, go_r, go_w]
        cfg = {
            "parent_pid": os.getpid(),
            "go_fd": go_r,
            "covers": ses.covers or [],
            "sockets": _host.exposed_sockets(ses.covers or []),
            "work_tmpfs": limits.work_tmpfs(),
            "seccomp": program_filter()[0],
            "status_fd": st_w,
            "ns_candidates": _ns_candidates(ses.root),
            "workdir": ses.workdir,
            "readonly": True,
            "python_bind": ses.bind,
            "uid": ses.uid,
            "gid": ses.uid,
            "rlimits": limits.rlimits(),
            "exe": ses.exe,
            "argv": interpreter_argv(ses, limits, str(res_w)),
            "env": ses.env,
            "program": _PROGRAM_NAME,
            **extra,
        }
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", "-c", _source("_boot.py"), marshal.dumps(cfg).hex()],
                cwd=ses.workdir,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                stdin=subprocess.DEVNULL,
                stdout=out_w,
                stderr=err_w,
                pass_fds=(res_w, st_w, go_r),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start the sandbox bootstrap {sys.executable!r}: {exc}") from exc
        for fd in (out_w, err_w, res_w, st_w, go_r):
            os.close(fd)
            fds.remove(fd)
        # Into the run's cgroup while its interpreter starts (a first move into a cgroup waits for
        # an RCU grace period: tens of ms, hidden here behind the bootstrap's own start-up).
        try:
            if ses.cgroup is not None:
                ses.cgroup.add(proc.pid)
            os.write(go_w, b"1")
        except OSError as exc:
            killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SandboxError(f"cannot put the sandbox in its run's cgroup: {exc}") from exc
        finally:
            os.close(go_w)
            fds.remove(go_w)
        cap = limits.max_output_bytes
        pipes = {
            out_r: Capture(cap),
            err_r: Capture(cap),
            res_r: Capture(STATUS_CAP),
            st_r: Capture(STATUS_CAP + 256 * extra.get("batch", {}).get("count", 0)),
        }
        try:
            timed_out = pump(proc, pipes, start + wall_s)
        finally:
            # Whatever happened: nothing of this run may outlive it.
            if proc.poll() is None:
                terminate(proc)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            killpg(proc.pid, signal.SIGKILL)
        return Boot(
            timed_out=timed_out,
            returncode=proc.returncode,
            status=lines(pipes[st_r].bytes()),
            result=lines(pipes[res_r].bytes()),
            out=pipes[out_r],
            err=pipes[err_r],
        )
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def check_source(source: Any) -> None:
    """Refuse anything but a str as a program's source (a caller's mistake, not a verdict)."""
    if not isinstance(source, str):
        raise SandboxError(f"sandbox source must be a str, got {type(source).__name__}")


def run_one(source: str, limits: Limits) -> SandboxResult:
    """Run one program in a sandbox start of its own: open a session, write the program, start
    it, classify its end and close the session (a clean-up failure becomes "sandbox_error")."""
    check_source(source)
    ses = open_session(limits)
    result = None
    try:
        path = os.path.join(ses.workdir, _PROGRAM_NAME)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(source)
        os.chmod(path, 0o644)
        if ses.uid is not None:
            os.chown(ses.workdir, ses.uid, ses.uid)  # only used where there is no mount namespace
        os.chmod(ses.workdir, 0o700)
        start = time.monotonic()
        boot = run_boot(ses, limits, {}, limits.timeout_s)
        result = classify(
            root=ses.root,
            timed_out=boot.timed_out,
            status=boot.status,
            result=boot.result,
            boot_rc=boot.returncode,
            out=boot.out,
            err=boot.err,
            wall=time.monotonic() - start,
        )
    finally:
        problem = close_session(ses)
        if problem and result is None:
            warnings.warn(f"sandbox clean-up after a failed start: {problem}", RuntimeWarning, stacklevel=2)
    return result if problem is None else sandbox_error(problem, result)


def classify(
    *,
    root: bool,
    timed_out: bool,
    status: list[tuple[str, str]],
    result: list[tuple[str, str]],
    boot_rc: int | None,
    out: Capture,
    err: Capture,
    wall: float,
) -> SandboxResult:
    """How the program ended, from what its start left: the bootstrap's status lines (namespaces
    used, setup errors, the exit status), the wrapper's result lines and the captured output."""
    exit_status: int | None = None
    for event, rest in status:
        if event == "ns" and rest.isdigit():
            with _ns_lock:
                _ns_cache[root] = int(rest)
        elif event == "setup_error":
            raise SandboxError(f"sandbox setup failed: {rest}")
        elif event == "exit" and rest.lstrip("-").isdigit():
            exit_status = int(rest)
    # The wrapper's line comes last (anything the program wrote itself comes before it).
    event, rest = result[-1] if result else ("", "")
    exc_type, _, exc_line = rest.partition(" ") if event == "exception" else ("", "", "")
    common = {
        "stdout": out.bytes().decode("utf-8", "replace"),
        "stderr": err.bytes().decode("utf-8", "replace"),
        "wall_s": wall,
        "completed": event == "completed",
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
    }

    def make(outcome: Outcome, exception: str | None, rc: int | None) -> SandboxResult:
        return SandboxResult(outcome=outcome, exception=exception, returncode=rc, **common)

    if timed_out:
        return make("timed_out", None, None)
    if exit_status is None:
        return make("crashed", f"sandbox bootstrap ended without a status (exit {boot_rc})", None)
    code = os.waitstatus_to_exitcode(exit_status)
    if code < 0:
        if -code == signal.SIGXCPU:
            return make("timed_out", None, code)
        return make("crashed", f"killed by signal {_signal_name(-code)}", code)
    if exc_type == "MemoryError":
        return make("crashed", "MemoryError", code)
    if code == 0:
        return make("passed", None, code)
    if event == "exception":
        return make("failed", _unescape(exc_line) or exc_type, code)
    if event == "exit":
        return make("failed", f"SystemExit: {_unescape(rest)}", code)
    return make("crashed", f"exited with status {code} without a Python exception", code)


def sandbox_error(problem: str, result: SandboxResult | None) -> SandboxResult:
    """The verdict for a program whose sandbox failed around it (keeping what `result` saw)."""
    return SandboxResult(
        outcome="sandbox_error",
        exception=f"sandbox error: {problem}",
        returncode=None if result is None else result.returncode,
        stdout="" if result is None else result.stdout,
        stderr="" if result is None else result.stderr,
        wall_s=0.0 if result is None else result.wall_s,
    )


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _unescape(text: str) -> str:
    try:
        return text.encode("ascii", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text
