"""The sandboxed program's seccomp filter, built once per process with libseccomp.

libseccomp's own Python bindings (`seccomp`, Debian's python3-seccomp) are used where importable,
else `pyseccomp` (the same API over ctypes; the `sandbox` extra installs it). The filter is compiled
here, in the trusted parent, and exported as the kernel's BPF program; the bootstrap loads those
bytes with prctl(PR_SET_SECCOMP) right before it execs the program's interpreter (after the uid
switch and no_new_privs), so the filter holds for the program and everything it starts, and the
program's start-up pays no import of libseccomp.

Default: allow. Denied (checked by the kernel on every call, whatever the program imports or
patches, ctypes and re-imported modules included):
- socket(2), every family: EACCES. No socket means no connect() to a filesystem socket anywhere,
  no abstract socket, no netlink. socketpair(2) stays allowed for AF_UNIX only (a connected pair
  reaches nothing outside the program; multiprocessing and asyncio use it).
- io_uring (it can open sockets and files without the syscalls above): ENOSYS.
- New namespaces (unshare, setns, clone with a CLONE_NEW* flag; clone3, whose flags a filter
  cannot see: ENOSYS, so the C library falls back to clone), bpf, perf_event_open, userfaultfd
  and the kernel keyring: EPERM. Kernel attack surface a generated program has no use for.
Syscalls of other ABIs (32-bit, x32) end the process (libseccomp's bad-architecture action).
"""

from __future__ import annotations

import errno
import tempfile
from functools import cache
from typing import Any

AF_UNIX = 1
_NEW_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
_EPERM = ("unshare", "setns", "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key")
_ENOSYS = ("io_uring_setup", "io_uring_enter", "io_uring_register", "clone3")


def _library() -> Any:
    try:
        import seccomp  # libseccomp's own bindings

        return seccomp
    except ImportError:
        import pyseccomp

        return pyseccomp


def _has_kernel_support() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


@cache
def program_filter() -> tuple[bytes | None, str]:
    """(BPF program bytes, "") or (None, why there is none here)."""
    if not _has_kernel_support():
        return None, "the kernel has no seccomp"
    try:
        sc = _library()
    except ImportError:
        return None, "no libseccomp Python bindings (pip install pyseccomp)"
    except Exception as exc:  # pyseccomp loads libseccomp.so at import time
        return None, f"libseccomp is not usable: {type(exc).__name__}: {exc}"
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        f.add_rule(sc.ERRNO(errno.EACCES), "socket")
        f.add_rule(sc.ERRNO(errno.EACCES), "socketpair", sc.Arg(0, sc.NE, AF_UNIX))
        for name in _EPERM:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        for name in _ENOSYS:
            f.add_rule(sc.ERRNO(errno.ENOSYS), name)
        for flag in _NEW_NAMESPACE_FLAGS:
            f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        with tempfile.TemporaryFile() as fh:
            f.export_bpf(fh)
            fh.seek(0)
            bpf = fh.read()
    except Exception as exc:  # a missing libseccomp.so, an unknown syscall name on this arch
        return None, f"libseccomp failed: {type(exc).__name__}: {exc}"
    if not bpf or len(bpf) % 8:
        return None, f"libseccomp exported a malformed filter ({len(bpf)} bytes)"
    return bpf, ""
