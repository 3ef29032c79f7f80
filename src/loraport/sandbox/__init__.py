"""Run untrusted, model-generated Python programs and say how each one ended.

    from loraport.sandbox import run_program, run_many
    res = run_program("assert 1 + 1 == 3", timeout_s=2)
    res.outcome, res.exception          # ("failed", "AssertionError")

Outcomes are kept apart: "passed" (exit status 0), "failed" (an uncaught exception or a nonzero
exit: `exception` holds the last traceback line, e.g. "AssertionError: x"), "timed_out" (the
wall-clock limit, or RLIMIT_CPU's SIGXCPU), "crashed" (killed by a signal, MemoryError, or any other
abnormal end). The parent never waits without a deadline: it kills and moves on.

What it does (Linux):
- Each program runs in its own fresh interpreter (`python -I -S -B`), started by a small bootstrap
  in a new session / process group, stdin closed, a minimal environment (OMP_NUM_THREADS=1 and
  friends, HOME and TMPDIR = the work dir), cwd a throw-away temp dir removed afterwards.
- The parent enforces the wall clock: SIGTERM to the process group (the bootstrap turns it into
  SIGKILL of the program), then SIGKILL of the whole group. stdout and stderr are read as they
  come and capped (`max_output_bytes` each); the rest is read and thrown away, never buffered.
- rlimits in the child: RLIMIT_AS and RLIMIT_DATA (memory_mb), RLIMIT_CPU, RLIMIT_NPROC,
  RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0; no_new_privs; SIGKILL when the bootstrap dies.
- Run as root (as here), the program runs under an unused uid/gid of its own (60000 + slot, like
  `isolate`), so RLIMIT_NPROC is enforced (it is not for root) and counts only this program's
  processes, and the program cannot signal the evaluator or other sandboxes, nor write to files
  it does not own.
- Namespaces, where the kernel allows them (probed once per process, then cached; `isolation()`
  reports what this machine gives): a new network namespace (only a loopback that is down, so even
  127.0.0.1 is unreachable), a new PID namespace (the program is PID 1 there and cannot see host
  processes; when it ends the kernel kills everything it left behind, fork bombs and setsid'd
  daemons included), a new mount namespace in which every mount is remounted read-only except the
  work dir (writes to /tmp, /dev/shm, the repository fail), new IPC and UTS namespaces. Not root:
  the same through an unprivileged user namespace, where the kernel allows one.
- If the interpreter is not readable by other users (e.g. under /root), its prefix is bind-mounted
  read-only into the mount namespace so the unprivileged program can run it.
- `run_many` runs programs in batches where it can (root, with a PID namespace): one sandbox start
  (bootstrap, namespaces, mounts) for up to `batch.CHUNK` programs, each still in a fresh
  interpreter with its own work dir, IPC namespace, limits and wall clock, and everything it left
  running killed before the next starts (`loraport.sandbox.batch`). `batch=False` turns it off.
- In the program itself, socket creation is replaced by a function that raises PermissionError,
  so networking fails even where no network namespace was available.

What it does NOT do: it is not a container or a security boundary for hostile code. There is no
seccomp filter, so every syscall the kernel allows an unprivileged user is available; a kernel bug
is an escape. The program can read any world-readable file on the host. The socket block is a
Python-level patch (ctypes can bypass it); only the network namespace really stops networking.
Without root and without user namespaces, none of the namespace protections apply: the program
runs as the caller's uid, can write wherever the caller can, can signal the caller's processes,
RLIMIT_NPROC counts all of the caller's processes, and setsid'd children can outlive the run.
`completed` (the program ran to its last line) is reported by a wrapper in the same process as the
untrusted code, so a deliberately malicious program can forge it; generated code that merely calls
sys.exit or os._exit early is caught by it.
"""

from loraport.sandbox.batch import batchable, run_batch, run_many
from loraport.sandbox.runner import (
    OUTCOMES,
    Limits,
    Outcome,
    SandboxResult,
    isolation,
    run_program,
)

__all__ = [
    "OUTCOMES",
    "Limits",
    "Outcome",
    "SandboxResult",
    "batchable",
    "isolation",
    "run_batch",
    "run_many",
    "run_program",
]
