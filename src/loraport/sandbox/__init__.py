"""Run untrusted, model-generated Python programs and say how each one ended.

    from loraport.sandbox import run_program, run_many
    res = run_program("assert 1 + 1 == 3", timeout_s=2)
    res.outcome, res.exception          # ("failed", "AssertionError")

Outcomes are kept apart: "passed" (exit status 0), "failed" (an uncaught exception or a nonzero
exit: `exception` holds the last traceback line, e.g. "AssertionError: x"), "timed_out" (the
wall-clock limit, or RLIMIT_CPU's SIGXCPU), "crashed" (killed by a signal, MemoryError, or any other
abnormal end), "sandbox_error" (the sandbox failed around the program, e.g. its clean-up; the
program's own ending is then unknown, and every other program of the call keeps its verdict). The
parent never waits without a deadline: it kills and moves on.

What it does (Linux; docs/sandbox.md says exactly what holds with and without root, namespaces,
seccomp and cgroups, and what never does):
- Each program runs in its own fresh interpreter (`python -I -S -B`), started by a small bootstrap
  in a new session / process group, stdin closed, a minimal environment, cwd a throw-away work dir.
- The parent enforces the wall clock (SIGTERM, then SIGKILL of the group); stdout and stderr are
  read as they come and capped (`max_output_bytes` each).
- rlimits per process: RLIMIT_AS and RLIMIT_DATA (memory_mb), RLIMIT_CPU, RLIMIT_NPROC,
  RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0; no_new_privs.
- As root: an unused uid/gid of the run's own (60000 + slot, locked machine-wide); and a cgroup
  per run (v2, else v1) that holds all of its processes to memory_mb + disk_mb + 64 MiB, to
  max_processes + 8 pids and to one CPU.
- Namespaces where the kernel allows them (as root, or through an unprivileged user namespace):
  network (nothing reachable, abstract sockets included), PID (the kernel kills everything a
  program left when it ends), mount (every host mount read-only; an empty read-only tmpfs over
  /tmp, /var/tmp, /run and every other world-writable host folder; /dev/null over any other
  socket anyone may connect to; the work dir a tmpfs of `disk_mb`, gone with the namespace),
  IPC and UTS.
- A seccomp filter built with libseccomp (`pyseccomp`, or libseccomp's own bindings) where both
  the kernel and the bindings are there: socket(2) fails for every family, whatever the program
  patches or calls through ctypes; io_uring, new namespaces, bpf, perf_event_open, userfaultfd and
  the keyring are denied too.
- The bootstrap dies with the evaluator (parent-death SIGKILL), taking the init and the PID
  namespace with it; a process's first sandbox run sweeps what a dead evaluator left under a
  sandbox uid it has used since boot and that no live process holds (processes, cgroups, work
  dirs).
- Clean-up cannot be defeated by what a program leaves: work dirs are tmpfs mounts that go with
  an umount, and the fallback's removal walks any depth without recursion. A clean-up failure
  becomes that program's "sandbox_error"; a uid that cannot be cleared is quarantined, with a
  warning, and listed by `isolation()`.
- `run_many` runs programs in batches where it can (root, PID and mount namespaces): one sandbox
  start for up to `batch.CHUNK` programs, each still in a fresh interpreter with its own tmpfs work
  dir, IPC namespace, limits and wall clock, and everything it left killed before the next starts.
- In the program itself socket creation is also replaced by a function that raises
  PermissionError: a clearer message, not a boundary (a program can undo it; the seccomp filter and
  the namespaces are what stop it).

What it does NOT do: it is not a VM. A kernel bug is an escape; every syscall the filter does not
deny is available. The program can read any world-readable file on the host. Without seccomp a
program that undoes the Python-level block can connect to a filesystem socket that no cover hides
(one made after the run started, or one at a path /proc/net/unix does not show). Without root and
without user namespaces, none of the namespace protections apply: the program runs as the caller's
uid, can write wherever the caller can, can signal the caller's processes, and setsid'd children
can outlive the run. Without cgroups a run's processes together can hold up to max_processes times
memory_mb. `completed` is reported by a wrapper in the same process as the untrusted code, so a
deliberately malicious program can forge it; generated code that merely calls sys.exit or os._exit
early is caught by it.
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
