"""Run one untrusted program: `run_program`, and `isolation()`, what this machine gives sandboxed
programs. See the package docstring for what is and is not protected.

The parts, by concern: `_types` (Limits, SandboxResult), `_uids` (uid claiming, reaping and the
start-up sweep), `_session` (one start's uid, work dir, interpreter and cgroup), `_capture`
(capped output, the wall clock), `_start` (launch the bootstrap, classify the end) and `batch`
(many programs per start); `_boot` and `_wrapper` run inside the sandbox."""

from __future__ import annotations

from typing import Any

from loraport.sandbox import _cgroup, _uids
from loraport.sandbox._boot import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    CLONE_NEWUTS,
)
from loraport.sandbox._seccomp import program_filter
from loraport.sandbox._session import hidden_folders, interpreter, is_root
from loraport.sandbox._start import namespaces, run_one
from loraport.sandbox._types import OUTCOMES, Limits, Outcome, SandboxResult

__all__ = ["OUTCOMES", "Limits", "Outcome", "SandboxResult", "isolation", "run_program"]

_NS_NAMES = {
    CLONE_NEWUSER: "user",
    CLONE_NEWNS: "mount",
    CLONE_NEWPID: "pid",
    CLONE_NEWNET: "net",
    CLONE_NEWIPC: "ipc",
    CLONE_NEWUTS: "uts",
}


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
    return run_one(source, limits)


def isolation() -> dict[str, Any]:
    """What isolation this machine gives sandboxed programs (runs one trivial program the first
    time to probe namespace support). Keys: uid_switch, namespaces, readonly_fs, interpreter,
    seccomp (a filter is installed; else seccomp_reason says why not), cgroup ("v2", "v1" or None,
    with cgroup_reason), work_tmpfs (the work dir is a size-limited tmpfs), hidden (host folders
    under an empty tmpfs) and quarantined_uids."""
    root = is_root()
    flags = namespaces()
    exe, bind = interpreter(None, switch_uid=root)
    bpf, why = program_filter()
    cg = _cgroup.probe()
    quarantined = _uids.quarantined()
    return {
        "seccomp": bpf is not None,
        "seccomp_reason": why,
        "cgroup": cg.version if root else None,
        "cgroup_reason": cg.reason,
        "work_tmpfs": bool(flags & CLONE_NEWNS),
        "hidden": hidden_folders(exe, bind) if flags & CLONE_NEWNS else [],
        "quarantined_uids": quarantined,
        "uid_switch": root,
        "namespaces": [name for bit, name in _NS_NAMES.items() if flags & bit],
        "readonly_fs": bool(flags & CLONE_NEWNS),
        "interpreter": exe,
        "interpreter_bind_mounted": bind is not None,
    }
