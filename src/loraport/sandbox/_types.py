"""The sandbox's two value types: what a run may use (`Limits`) and how a program ended
(`SandboxResult`). Both are re-exported by `loraport.sandbox`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from loraport.errors import SandboxError

Outcome = Literal["passed", "failed", "timed_out", "crashed", "sandbox_error"]
OUTCOMES: tuple[str, ...] = ("passed", "failed", "timed_out", "crashed", "sandbox_error")

#: The run's cgroup holds the sandbox's own bootstrap and init besides the program.
RUN_OVERHEAD_MB = 64
RUN_OVERHEAD_PIDS = 8


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
        return (self.memory_mb + self.disk_mb + RUN_OVERHEAD_MB) * 1024 * 1024

    def work_tmpfs(self) -> str:
        return f"size={self.disk_mb}m,nr_inodes={max(4096, self.disk_mb * 256)}"
