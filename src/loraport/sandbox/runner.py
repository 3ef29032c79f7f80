"""Parent side of the sandbox: start the bootstrap, enforce the wall clock, read capped output,
classify the end. See the package docstring for what is and is not protected."""

from __future__ import annotations

import marshal
import math
import os
import selectors
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from loraport.errors import SandboxError
from loraport.sandbox import _cgroup, _host

# The clone flags are defined once, by the child-side boot script that passes them to unshare(2).
from loraport.sandbox._boot import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from loraport.sandbox._seccomp import program_filter

# Sandbox uids: claimed per run, locked machine-wide, swept of a dead evaluator's leftovers.
from loraport.sandbox._uids import (
    _WORK_PREFIX,
    _acquire_uid,
    _quarantine,
    _quarantined,
    _reap,
    _release_uid,
    _state_lock,
)

Outcome = Literal["passed", "failed", "timed_out", "crashed", "sandbox_error"]
OUTCOMES: tuple[str, ...] = ("passed", "failed", "timed_out", "crashed", "sandbox_error")

_NS_NAMES = {
    CLONE_NEWUSER: "user",
    CLONE_NEWNS: "mount",
    CLONE_NEWPID: "pid",
    CLONE_NEWNET: "net",
    CLONE_NEWIPC: "ipc",
    CLONE_NEWUTS: "uts",
}
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
_PYTHON_MOUNT = ".python"
_KILL_GRACE_S = 0.25
_DRAIN_GRACE_S = 1.0
_STATUS_CAP = 64 * 1024
#: The run's cgroup holds the sandbox's own bootstrap and init besides the program.
_RUN_OVERHEAD_MB = 64
_RUN_OVERHEAD_PIDS = 8


@dataclass(frozen=True)
class SandboxResult:
    """How one program ended.

    outcome: "passed" (exit status 0), "failed" (uncaught exception or nonzero exit),
    "timed_out" (wall clock or CPU limit), "crashed" (signal, MemoryError, other abnormal end),
    "sandbox_error" (the sandbox itself failed around this program, e.g. its clean-up: `exception`
    says what; the program's own ending is then unknown, and other programs are unaffected).
    exception: the final traceback line ("AssertionError: boom", "SystemExit: 2"), or for crashes a
    description ("MemoryError", "killed by signal SIGSEGV"); None for passed and timed_out.
    returncode: the program's exit status (negative signal number when killed); None when timed out.
    completed: the program ran to its last line (False after sys.exit/os._exit part-way).
    """

    outcome: Outcome
    exception: str | None
    returncode: int | None
    stdout: str
    stderr: str
    wall_s: float
    completed: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    def describe(self) -> str:
        """One line: 'passed', 'failed: AssertionError: x', 'timed_out', 'crashed: MemoryError'."""
        return self.outcome if self.exception is None else f"{self.outcome}: {self.exception}"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0
    memory_mb: int = 512
    cpu_s: float | None = None
    max_processes: int = 32
    max_file_mb: int = 16
    max_open_files: int = 64
    max_output_bytes: int = 64 * 1024
    site_packages: bool = False
    python: str | None = None
    disk_mb: int = 64

    def __post_init__(self) -> None:
        def bad(name: str, value: Any, want: str) -> SandboxError:
            return SandboxError(f"sandbox limit {name}={value!r} is invalid: {want}")

        if not isinstance(self.timeout_s, int | float) or not 0 < self.timeout_s <= 3600:
            raise bad("timeout_s", self.timeout_s, "need seconds in (0, 3600]")
        if self.cpu_s is not None and (not isinstance(self.cpu_s, int | float) or self.cpu_s <= 0):
            raise bad("cpu_s", self.cpu_s, "need positive seconds or None")
        for name, low in (
            ("memory_mb", 64),
            ("max_processes", 1),
            ("max_file_mb", 0),
            ("max_open_files", 16),
            ("max_output_bytes", 0),
            ("disk_mb", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, value, f"need an integer >= {low}")

    def rlimits(self) -> list[tuple[str, int, int]]:
        mem = self.memory_mb * 1024 * 1024
        cpu = self.cpu_s if self.cpu_s is not None else self.timeout_s + 1
        cpu_soft = max(1, math.ceil(cpu))
        fsize = self.max_file_mb * 1024 * 1024
        return [
            ("AS", mem, mem),
            ("DATA", mem, mem),
            ("CPU", cpu_soft, cpu_soft + 1),
            ("NPROC", self.max_processes, self.max_processes),
            ("FSIZE", fsize, fsize),
            ("NOFILE", self.max_open_files, self.max_open_files),
            ("CORE", 0, 0),
        ]

    def run_memory_bytes(self) -> int:
        """The run's cgroup memory limit: its processes together, the work dir's tmpfs (charged
        as memory) and the sandbox's own bootstrap and init."""
        return (self.memory_mb + self.disk_mb + _RUN_OVERHEAD_MB) * 1024 * 1024

    def work_tmpfs(self) -> str:
        return f"size={self.disk_mb}m,nr_inodes={max(4096, self.disk_mb * 256)}"


# ---------------------------------------------------------------------------------------------
# Process-wide state: namespace support (probed once per privilege level), sandbox uids in use.

_ns_cache: dict[bool, int] = {}


def _is_root() -> bool:
    return os.geteuid() == 0


def _ns_candidates(root: bool) -> list[int]:
    cands = list(_ROOT_CANDIDATES if root else _USER_CANDIDATES)
    with _state_lock:
        known = _ns_cache.get(root)
    return cands if known is None else cands[cands.index(known) :]


@cache
def _source(name: str) -> str:
    return (Path(__file__).resolve().parent / name).read_text(encoding="utf-8")


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


def _interpreter(python: str | None, switch_uid: bool) -> tuple[str, str | None]:
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
def _covers(exe: str, bind_prefix: str | None) -> list[str]:
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


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"signal {num}"


def _lines(data: bytes) -> list[tuple[str, str]]:
    """(event, rest) per line of a status or result pipe."""
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        event, _, rest = line.partition(" ")
        out.append((event, rest))
    return out


def _unescape(text: str) -> str:
    try:
        return text.encode("ascii", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:
        return text


class _Capture:
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


def _pump(proc: subprocess.Popen, pipes: dict[int, _Capture], deadline: float) -> bool:
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
                _terminate(proc)
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


def _terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (the bootstrap then SIGKILLs its child, which takes the whole PID
    namespace down), wait briefly, then SIGKILL the group."""
    _killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    _killpg(proc.pid, signal.SIGKILL)


@dataclass
class _Session:
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


def _open_session(limits: Limits) -> _Session:
    """A uid (as root), a throw-away work dir and a cgroup; `_close_session` gives them back."""
    root = _is_root()
    uid = _acquire_uid() if root else None
    prefix = _WORK_PREFIX if uid is None else f"{_WORK_PREFIX}u{uid}-"
    try:
        ses = _Session(root, uid, os.path.realpath(tempfile.mkdtemp(prefix=prefix)))
    except BaseException:
        if uid is not None:
            _release_uid(uid)
        raise
    try:
        exe, bind_prefix = _interpreter(limits.python, switch_uid=uid is not None)
        ses.env = _minimal_env(ses.workdir)
        ses.exe = exe
        if bind_prefix is not None:
            dst = os.path.join(ses.workdir, _PYTHON_MOUNT)
            ses.exe = os.path.join(dst, os.path.relpath(exe, bind_prefix))
            ses.bind = {"src": bind_prefix, "dst": dst}
            if os.path.isdir(os.path.join(bind_prefix, "lib")):
                ses.env["LD_LIBRARY_PATH"] = os.path.join(dst, "lib")
        ses.covers = _covers(exe, bind_prefix)
        if uid is not None:
            pids = limits.max_processes + _RUN_OVERHEAD_PIDS
            try:
                ses.cgroup = _cgroup.RunCgroup.create(uid, limits.run_memory_bytes(), pids)
            except OSError as exc:
                raise SandboxError(f"cannot make the run's cgroup: {exc}") from exc
        return ses
    except BaseException:
        _close_session(ses)
        raise


def _close_session(ses: _Session) -> str | None:
    """Kill what is left of the run (its cgroup, its uid), remove its work dir without recursion,
    give the uid back (or quarantine it). None, or what could not be done: nothing raises here."""
    problems = []
    if ses.cgroup is not None:
        try:
            ses.cgroup.remove()
        except OSError as exc:
            problems.append(str(exc))
    if ses.uid is not None and not _reap(ses.uid):
        # Something still runs under the uid: its work dir stays (it is within that uid's reach),
        # and so does the uid, out of use; the start-up sweep of a later process clears both.
        problems.append(_quarantine(ses.uid))
    else:
        try:
            _host.remove_tree(ses.workdir)
        except Exception as exc:  # never lose a verdict to a clean-up
            problems.append(f"cannot remove the work dir {ses.workdir}: {type(exc).__name__}: {exc}")
        if ses.uid is not None and (why := _release_uid(ses.uid, reaped=True)):
            problems.append(why)
    return "; ".join(p for p in problems if p) or None


def _sandbox_error(problem: str, result: SandboxResult | None) -> SandboxResult:
    return SandboxResult(
        outcome="sandbox_error",
        exception=f"sandbox error: {problem}",
        returncode=None if result is None else result.returncode,
        stdout="" if result is None else result.stdout,
        stderr="" if result is None else result.stderr,
        wall_s=0.0 if result is None else result.wall_s,
    )


@dataclass
class _Boot:
    """What one bootstrap run left on its pipes."""

    timed_out: bool
    returncode: int | None
    status: list[tuple[str, str]]
    result: list[tuple[str, str]]
    out: _Capture
    err: _Capture


def _interpreter_argv(ses: _Session, limits: Limits, result_fd: str) -> list[str]:
    flags = ["-I", "-B", "-X", "utf8"] + ([] if limits.site_packages else ["-S"])
    return [ses.exe, *flags, "-c", _source("_wrapper.py"), result_fd, _PROGRAM_NAME]


def _boot(ses: _Session, limits: Limits, extra: dict[str, Any], wall_s: float) -> _Boot:
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
            "argv": _interpreter_argv(ses, limits, str(res_w)),
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
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SandboxError(f"cannot put the sandbox in its run's cgroup: {exc}") from exc
        finally:
            os.close(go_w)
            fds.remove(go_w)
        cap = limits.max_output_bytes
        pipes = {
            out_r: _Capture(cap),
            err_r: _Capture(cap),
            res_r: _Capture(_STATUS_CAP),
            st_r: _Capture(_STATUS_CAP + 256 * extra.get("batch", {}).get("count", 0)),
        }
        try:
            timed_out = _pump(proc, pipes, start + wall_s)
        finally:
            # Whatever happened: nothing of this run may outlive it.
            if proc.poll() is None:
                _terminate(proc)
            try:
                proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            _killpg(proc.pid, signal.SIGKILL)
        return _Boot(
            timed_out=timed_out,
            returncode=proc.returncode,
            status=_lines(pipes[st_r].bytes()),
            result=_lines(pipes[res_r].bytes()),
            out=pipes[out_r],
            err=pipes[err_r],
        )
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _check_source(source: Any) -> None:
    if not isinstance(source, str):
        raise SandboxError(f"sandbox source must be a str, got {type(source).__name__}")


def _run(source: str, limits: Limits) -> SandboxResult:
    _check_source(source)
    ses = _open_session(limits)
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
        boot = _boot(ses, limits, {}, limits.timeout_s)
        result = _classify(
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
        problem = _close_session(ses)
        if problem and result is None:
            warnings.warn(f"sandbox clean-up after a failed start: {problem}", RuntimeWarning, stacklevel=2)
    return result if problem is None else _sandbox_error(problem, result)


def _classify(
    *,
    root: bool,
    timed_out: bool,
    status: list[tuple[str, str]],
    result: list[tuple[str, str]],
    boot_rc: int | None,
    out: _Capture,
    err: _Capture,
    wall: float,
) -> SandboxResult:
    exit_status: int | None = None
    for event, rest in status:
        if event == "ns" and rest.isdigit():
            with _state_lock:
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


# ---------------------------------------------------------------------------------------------
# Public API


def run_program(
    source: str,
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    cpu_s: float | None = None,
    max_processes: int = 32,
    max_file_mb: int = 16,
    max_open_files: int = 64,
    max_output_bytes: int = 64 * 1024,
    site_packages: bool = False,
    python: str | None = None,
    disk_mb: int = 64,
) -> SandboxResult:
    """Run one untrusted Python program in its own sandboxed process and say how it ended.

    timeout_s: wall clock, enforced by this process. memory_mb: RLIMIT_AS and RLIMIT_DATA.
    cpu_s: RLIMIT_CPU (default timeout_s + 1). max_processes: RLIMIT_NPROC. max_file_mb:
    RLIMIT_FSIZE. max_open_files: RLIMIT_NOFILE. max_output_bytes: kept per stream (stdout,
    stderr); the rest is read and dropped. site_packages: drop -S so site-packages is importable.
    python: interpreter to run (default: this one). disk_mb: size of the work dir's tmpfs, for all
    of the program's files together (where there is a mount namespace). As root with cgroups, the
    run as a whole is also held to memory_mb + disk_mb + 64 MiB of memory, max_processes + 8 pids
    and one CPU (see docs/sandbox.md).
    """
    limits = Limits(
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        cpu_s=cpu_s,
        max_processes=max_processes,
        max_file_mb=max_file_mb,
        max_open_files=max_open_files,
        max_output_bytes=max_output_bytes,
        site_packages=site_packages,
        python=python,
        disk_mb=disk_mb,
    )
    return _run(source, limits)


def _namespaces() -> int:
    """The namespace flags this process's sandboxes get (one trivial program probes them the first
    time; every run caches what it learnt)."""
    root = _is_root()
    with _state_lock:
        known = root in _ns_cache
    if not known:
        _run("pass\n", Limits(timeout_s=10.0))
    with _state_lock:
        return _ns_cache.get(root, 0)


def isolation() -> dict[str, Any]:
    """What isolation this machine gives sandboxed programs (runs one trivial program the first
    time to probe namespace support). Keys: uid_switch, namespaces, readonly_fs, interpreter,
    seccomp (a filter is installed; else seccomp_reason says why not), cgroup ("v2", "v1" or None,
    with cgroup_reason), work_tmpfs (the work dir is a size-limited tmpfs), hidden (host folders
    under an empty tmpfs) and quarantined_uids."""
    root = _is_root()
    flags = _namespaces()
    exe, bind = _interpreter(None, switch_uid=root)
    bpf, why = program_filter()
    cg = _cgroup.probe()
    with _state_lock:
        quarantined = dict(_quarantined)
    return {
        "seccomp": bpf is not None,
        "seccomp_reason": why,
        "cgroup": cg.version if root else None,
        "cgroup_reason": cg.reason,
        "work_tmpfs": bool(flags & CLONE_NEWNS),
        "hidden": _covers(exe, bind) if flags & CLONE_NEWNS else [],
        "quarantined_uids": quarantined,
        "uid_switch": root,
        "namespaces": [name for bit, name in _NS_NAMES.items() if flags & bit],
        "readonly_fs": bool(flags & CLONE_NEWNS),
        "interpreter": exe,
        "interpreter_bind_mounted": bind is not None,
    }
