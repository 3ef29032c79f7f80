"""Sandbox behaviour, including hostile programs. Each test is bounded by a few seconds of wall clock."""

from __future__ import annotations

import ast
import os
import socket
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from loraport.errors import SandboxError
from loraport.sandbox import OUTCOMES, isolation, run_many, run_program

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def iso() -> dict:
    return isolation()


def _recording_uids(monkeypatch) -> list[int]:
    """The sandbox uids the runs made from here on used (root mode): other sandboxes, say a study
    running beside the tests, use other uids and are none of these tests' business."""
    from loraport.sandbox import _session

    used: list[int] = []
    acquire = _session.acquire_uid

    def record() -> int:
        used.append(acquire())
        return used[-1]

    monkeypatch.setattr(_session, "acquire_uid", record)
    return used


def _processes_under(uids: list[int]) -> list[int]:
    from loraport.sandbox import _uids

    return sorted(pid for uid in uids for pid in _uids._processes_of(uid))


def test_passing_program():
    res = run_program("print('hello')\n")
    assert res.outcome == "passed"
    assert res.passed and res.completed
    assert res.returncode == 0
    assert res.stdout == "hello\n"
    assert res.exception is None
    assert res.outcome in OUTCOMES
    assert 0 < res.wall_s < 5


def test_assertion_failure_reports_exception_line():
    res = run_program("x = 1\nassert x == 2, 'x was %d' % x\n")
    assert res.outcome == "failed"
    assert res.exception == "AssertionError: x was 1"
    assert res.returncode == 1
    assert 'File "main.py", line 2' in res.stderr
    assert res.describe() == "failed: AssertionError: x was 1"


def test_other_failures_and_crashes_are_kept_apart():
    assert run_program("def f(:\n  pass\n").exception.startswith("SyntaxError")
    res = run_program("import sys\nsys.exit(2)\n")
    assert (res.outcome, res.exception, res.returncode) == ("failed", "SystemExit: 2", 2)
    # Exit 0 part-way: passed, but the program did not reach its last line.
    res = run_program("import sys\nsys.exit(0)\nassert False\n")
    assert res.outcome == "passed" and not res.completed
    res = run_program("import os\nos._exit(0)\nassert False\n")
    assert res.outcome == "passed" and not res.completed
    res = run_program("import os\nos._exit(3)\n")
    assert res.outcome == "crashed" and res.returncode == 3
    res = run_program("import ctypes\nctypes.string_at(0)\n")
    assert res.outcome == "crashed" and res.exception == "killed by signal SIGSEGV"
    # stdin is closed.
    assert run_program("input()\n").exception == "EOFError: EOF when reading a line"
    # The program is not PID 1 of its namespace: signals it sends itself act normally.
    res = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert res.outcome == "crashed" and res.returncode == -15


def test_infinite_loop_times_out_within_budget():
    start = time.monotonic()
    res = run_program("while True:\n    pass\n", timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert res.outcome == "timed_out"
    assert res.returncode is None
    assert 1.0 <= res.wall_s < 3.0
    assert elapsed < 3.0


def test_sleeping_program_and_stuck_thread_time_out():
    res = run_program(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n", timeout_s=1.0
    )
    assert res.outcome == "timed_out"
    assert res.wall_s < 3.0


def test_fork_bomb_is_contained_and_the_run_carries_on(iso, monkeypatch):
    # How many processes can it make? RLIMIT_NPROC must stop it (as root only because the program
    # runs under a uid of its own).
    counter = textwrap.dedent(
        """
        import os, time
        n = 0
        while n < 500:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
        print(n)
        """
    )
    res = run_program(counter, timeout_s=5.0, max_processes=16)
    assert res.outcome == "passed", res.describe()
    assert int(res.stdout) < 16

    used = _recording_uids(monkeypatch)
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    res = run_program(bomb, timeout_s=1.5, max_processes=32)
    assert res.outcome in ("timed_out", "crashed")
    assert time.monotonic() - start < 5.0
    if iso["uid_switch"]:
        time.sleep(0.2)
        assert used and _processes_under(used) == [], "fork bomb processes outlived the run"
    after = run_program("print(sum(range(10)))\n", timeout_s=5.0)
    assert after.outcome == "passed" and after.stdout == "45\n"
    assert after.wall_s < 2.0


def test_memory_bomb_crashes_the_child_not_the_parent():
    res = run_program("x = []\nwhile True:\n    x.append(bytearray(10**7))\n", memory_mb=256, timeout_s=5.0)
    assert res.outcome == "crashed"
    assert res.exception == "MemoryError"
    res = run_program("x = bytearray(10**10)\n", memory_mb=256)
    assert (res.outcome, res.exception) == ("crashed", "MemoryError")


def test_writes_outside_the_work_dir_do_not_land(iso):
    name = f"loraport-sandbox-escape-{uuid.uuid4().hex}"
    targets = [Path("/tmp") / name, REPO / name, Path("/var/tmp") / name]
    src = "import sys\nfor p in sys.argv[1:] or %r:\n    open(p, 'w').write('x')\n" % [
        str(t) for t in targets
    ]
    try:
        res = run_program(src)
        assert not any(t.exists() for t in targets)
        if iso["readonly_fs"]:
            assert res.outcome == "failed"
            assert "Read-only file system" in res.exception
    finally:
        for t in targets:
            t.unlink(missing_ok=True)


def test_work_dir_is_writable_and_removed_afterwards():
    src = "import os, tempfile\nopen('out.txt', 'w').write('ok')\ntempfile.mkdtemp()\nprint(os.getcwd())\n"
    res = run_program(src)
    assert res.outcome == "passed", res.describe()
    workdir = res.stdout.strip()
    assert workdir and not os.path.exists(workdir)


def test_file_size_limit():
    res = run_program("open('big', 'wb').write(b'x' * (8 * 2**20))\n", max_file_mb=1)
    assert res.outcome == "failed"
    assert "File too large" in res.exception


def test_network_connection_to_localhost_fails(iso):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        res = run_program(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hi')\n"
        )
        assert res.outcome == "failed"
        assert res.exception.startswith("PermissionError")
        # Below the Python-level block: raw syscalls through ctypes, stopped by the network namespace.
        raw = textwrap.dedent(
            f"""
            import ctypes, socket, struct
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.socket(2, 1, 0)
            addr = struct.pack("=H", 2) + struct.pack("!H", {port}) + bytes([127, 0, 0, 1]) + bytes(8)
            rc = libc.connect(fd, addr, 16)
            assert rc == 0, "connect failed errno %d" % ctypes.get_errno()
            """
        )
        res = run_program(raw)
        if "net" in iso["namespaces"]:
            assert res.outcome == "failed"
            assert res.exception.startswith("AssertionError: connect failed")
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()


def test_child_cannot_kill_the_parent(iso):
    me = os.getpid()
    src = textwrap.dedent(
        f"""
        import os, signal
        results = []
        for target in (os.getppid(), {me}):
            try:
                os.kill(target, signal.SIGKILL)
                results.append("sent")
            except OSError as exc:
                results.append(type(exc).__name__)
        try:
            os.kill(-1, signal.SIGKILL)
            results.append("sent")
        except OSError as exc:
            results.append(type(exc).__name__)
        print(results)
        """
    )
    res = run_program(src)
    # We are still here, and so is a fresh program run.
    assert os.getpid() == me
    assert run_program("pass\n").outcome == "passed"
    if iso["uid_switch"] or "pid" in iso["namespaces"]:
        # Its parent (a root-owned init), the test process (another uid, or invisible from its PID
        # namespace) and kill(-1) (no process it may signal): all refused.
        assert res.outcome == "passed", res.describe()
        assert "sent" not in ast.literal_eval(res.stdout), res.stdout


def test_stdout_flood_is_capped_without_hanging():
    start = time.monotonic()
    res = run_program(
        "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", timeout_s=1.0, max_output_bytes=10_000
    )
    assert res.outcome == "timed_out"
    assert res.stdout_truncated and len(res.stdout) == 10_000
    assert time.monotonic() - start < 4.0
    res = run_program(
        "import sys\nsys.stdout.write('y' * 20_000_000)\nsys.stderr.write('done')\n", max_output_bytes=1000
    )
    assert res.outcome == "passed"
    assert res.stdout == "y" * 1000 and res.stdout_truncated
    assert res.stderr == "done" and not res.stderr_truncated


def test_run_many_keeps_order_and_runs_in_parallel():
    sources = [f"import time\ntime.sleep({0.5 - 0.1 * i})\nprint({i})\n" for i in range(4)]
    sources.append("assert False, 'nope'\n")
    start = time.monotonic()
    results = run_many(sources, timeout_s=5.0)
    elapsed = time.monotonic() - start
    assert [r.stdout for r in results[:4]] == ["0\n", "1\n", "2\n", "3\n"]
    assert [r.outcome for r in results] == ["passed"] * 4 + ["failed"]
    if (os.cpu_count() or 1) >= 2:
        sequential = sum(r.wall_s for r in results)
        assert elapsed < 0.9 * sequential
    assert run_many([]) == []


def test_bad_arguments_name_the_value():
    with pytest.raises(SandboxError, match="timeout_s=-1"):
        run_program("pass", timeout_s=-1)
    with pytest.raises(SandboxError, match="memory_mb=8"):
        run_program("pass", memory_mb=8)
    with pytest.raises(SandboxError, match="single str"):
        run_many("print(1)")
    with pytest.raises(SandboxError, match="workers=0"):
        run_many(["pass"], workers=0)
    with pytest.raises(SandboxError, match="bogus"):
        run_many(["pass"], bogus=1)
    with pytest.raises(SandboxError, match="str"):
        run_program(b"pass")  # type: ignore[arg-type]


def test_isolation_report(iso):
    assert set(iso) >= {"uid_switch", "namespaces", "readonly_fs", "interpreter"}
    assert iso["uid_switch"] == (os.geteuid() == 0)


def test_a_sandbox_uid_belongs_to_one_process_at_a_time(tmp_path, monkeypatch):
    """Bench workers are separate processes that each run programs: a uid one of them holds is
    never handed to another (the lock is the kernel's, so it also goes when the holder dies)."""
    import subprocess
    import sys

    from loraport.sandbox import _uids

    locks = tmp_path / "locks"
    monkeypatch.setattr(_uids, "_UID_LOCKS", locks)
    probe = (
        "import sys; from pathlib import Path; from loraport.sandbox import _uids; "
        "_uids._UID_LOCKS = Path(sys.argv[1]); print(_uids._claim(60999) is not None)"
    )

    def other_process_gets_it() -> bool:
        out = subprocess.run([sys.executable, "-c", probe, str(locks)], capture_output=True, text=True)
        return out.stdout.strip() == "True"

    fd = _uids._claim(60999)
    assert fd is not None and not other_process_gets_it()
    os.close(fd)
    assert other_process_gets_it()
    assert oct(locks.stat().st_mode & 0o777) == "0o700"

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    monkeypatch.setattr(_uids, "_UID_LOCKS", tmp_path / "link")
    with pytest.raises(SandboxError, match="not a private folder"):
        _uids._claim(60999)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as a sandbox uid")
def test_nothing_of_a_run_survives_under_its_uid():
    import subprocess
    import threading

    from loraport.sandbox import _uids

    uid = 60998
    procs = [subprocess.Popen(["sleep", "30"], user=uid, group=uid) for _ in range(3)]
    reapers = [threading.Thread(target=p.wait) for p in procs]  # what the namespace's init would do
    for t in reapers:
        t.start()
    assert len(_uids._processes_of(uid)) == 3
    assert _uids.reap(uid) is True
    assert _uids._processes_of(uid) == {} and all(p.returncode == -9 for p in procs)
    for t in reapers:
        t.join()
