"""Issue 15: the hostile programs that got past the sandbox. Each test needs one mechanism and is
skipped, with the reason, where this machine does not give it (see docs/sandbox.md)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from loraport.sandbox import (
    Limits,
    _cgroup,
    _host,
    _session,
    _start,
    _types,
    _uids,
    batchable,
    isolation,
    run_batch,
    run_many,
    run_program,
)
from loraport.scorers.code import score_code_batch
from loraport.tasks.item import Item

ISO = isolation()
ROOT = os.geteuid() == 0
need_ns = pytest.mark.skipif(
    not ISO["work_tmpfs"], reason="needs a mount namespace (root or user namespaces)"
)
need_cgroup = pytest.mark.skipif(
    ISO["cgroup"] is None, reason=f"needs a cgroup per run: {ISO['cgroup_reason'] or 'none'}"
)
need_root = pytest.mark.skipif(not ROOT, reason="needs root (a sandbox uid of its own)")

# Connect to the socket at PATH twice: through a re-imported _socket (the Python-level block
# undone without ctypes) and through raw syscalls. Prints one word per attempt.
CONNECT = textwrap.dedent(
    """
    import ctypes, struct, sys
    path = PATH
    results = []
    for name in ("socket", "_socket"):
        sys.modules.pop(name, None)
    import _socket
    try:
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        s.connect(path)
        results.append("reimport-connected")
    except OSError as exc:
        results.append("reimport-" + type(exc).__name__)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(1, 1, 0)
    addr = struct.pack("=H", 1) + path.encode() + bytes(108 - len(path))
    rc = libc.connect(fd, addr, len(addr)) if fd >= 0 else -1
    results.append("ctypes-connected" if rc == 0 else "ctypes-errno-%d" % ctypes.get_errno())
    print(" ".join(results))
    """
)


def _listener(path: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o777)  # the kind X11, D-Bus or a database leaves: anyone may connect
    server.listen(8)
    server.setblocking(False)
    return server


def _socket_places() -> list[str]:
    """A socket in /tmp (hidden by a cover) and one in a folder that no cover hides and that any
    user can reach (so only the sandbox stands between the program and it)."""

    def reachable(folder: Path) -> bool:
        chain = [folder, *folder.parents]
        return all(os.stat(p).st_mode & 0o001 for p in chain) and os.access(folder, os.W_OK)

    hidden = ISO["hidden"]
    for base in (Path(__file__).resolve().parent, Path("/var/lib"), Path("/srv"), Path("/opt")):
        if base.is_dir() and reachable(base) and not any(str(base).startswith(h + "/") for h in hidden):
            break
    else:
        pytest.skip("no folder here that every user can reach and no cover hides")
    places = [Path(tempfile.mkdtemp(prefix="loraport-sock-", dir=d)) for d in ("/tmp", base)]
    for folder in places:
        os.chmod(folder, 0o755)
    return [str(folder / "s.sock") for folder in places]


@pytest.mark.parametrize("layer", ["all", "mounts only"])
def test_a_filesystem_socket_outside_the_work_dir_is_unreachable(monkeypatch, layer):
    if layer == "all" and not ISO["seccomp"]:
        pytest.skip(f"no seccomp filter here: {ISO['seccomp_reason']}")
    if layer == "mounts only":
        if not ISO["work_tmpfs"]:
            pytest.skip("needs a mount namespace (root or user namespaces)")
        monkeypatch.setattr(_start, "program_filter", lambda: (None, "off for this test"))
    paths = _socket_places()
    servers = [_listener(p) for p in paths]
    try:
        for path in paths:
            res = run_program(CONNECT.replace("PATH", repr(path)), timeout_s=5.0)
            assert res.outcome == "passed", res.describe() + res.stderr
            assert "connected" not in res.stdout, (path, res.stdout)
        for server in servers:
            with pytest.raises(BlockingIOError):
                server.accept()
    finally:
        for server, path in zip(servers, paths, strict=True):
            server.close()
            os.unlink(path)
            os.rmdir(os.path.dirname(path))


@pytest.mark.skipif(not ISO["seccomp"], reason=f"no seccomp filter here: {ISO['seccomp_reason']}")
def test_the_seccomp_filter_denies_socket_creation_and_new_namespaces():
    src = textwrap.dedent(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        out = [libc.socket(2, 1, 0), ctypes.get_errno(), libc.socket(1, 1, 0), ctypes.get_errno()]
        out += [libc.unshare(0x10000000), ctypes.get_errno(), libc.syscall(425, 8, 0), ctypes.get_errno()]
        pair = (ctypes.c_int * 2)()
        out += [libc.socketpair(1, 1, 0, pair), libc.socketpair(2, 1, 0, pair), ctypes.get_errno()]
        print(out)
        """
    )
    res = run_program(src)
    assert res.outcome == "passed", res.describe()
    # socket(): EACCES for every family; unshare: EPERM; io_uring_setup (425): ENOSYS; an AF_UNIX
    # socketpair stays (it reaches nothing outside the program), an AF_INET one does not.
    assert res.stdout.strip() == "[-1, 13, -1, 13, -1, 1, -1, 38, 0, -1, 13]"


DEEP = "import os\nfor _ in range(5000):\n    os.mkdir('d')\n    os.chdir('d')\n"


def _items(n: int) -> list[Item]:
    return [
        Item(
            id=f"deep-{i}",
            prompt="Write square(x).",
            answer="",
            scorer="code_exec",
            tests=f"assert square({i}) == {i * i}\n",
            entry_point="square",
        )
        for i in range(n)
    ]


def test_a_5000_level_tree_gets_a_verdict_and_its_neighbours_keep_theirs(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    tag = f"# {uuid.uuid4().hex}\n"  # a fresh program: no verdict comes from the scorer's memo
    good = f"```python\n{tag}def square(x):\n    return x * x\n```"
    preds = [good, good.replace(tag, tag + DEEP), good]
    verdicts = score_code_batch(preds, _items(3), timeout_s=10.0)
    assert [v.correct for v in verdicts] == [True, True, True], [v.detail for v in verdicts]
    assert not list(tmp_path.glob("loraport-sbx-*")), "a work dir was left behind"
    # One at a time too (the single-run path), and no uid left claimed or quarantined.
    with _uids._state_lock:
        held = set(_uids._uids_in_use)
    res = run_program(DEEP + "print(len(os.getcwd()))\n", timeout_s=10.0)
    assert res.outcome == "passed", res.describe()
    assert not list(tmp_path.glob("loraport-sbx-*"))
    with _uids._state_lock:
        assert set(_uids._uids_in_use) == held and not _uids._quarantined


@need_root
def test_without_namespaces_a_deep_tree_on_the_hosts_disk_is_still_cleaned_up(tmp_path, monkeypatch):
    # The fallback: no mount namespace, so the program writes its tree into the host's work dir and
    # the parent removes it. /dev/shm (a tmpfs) keeps 5,000 levels fast on a busy machine.
    # Without a mount namespace nothing can be bind-mounted: the interpreter must be one that
    # other users can run.
    usable = [p for p in (sys.executable, "/usr/bin/python3") if os.path.exists(p)]
    usable = [p for p in usable if _session.interpreter(p, switch_uid=True)[1] is None]
    if not usable:
        pytest.skip("no interpreter here that a sandbox uid can run without a bind mount")
    shm = Path("/dev/shm")
    monkeypatch.setattr(
        tempfile, "tempdir", tempfile.mkdtemp(dir=shm if os.access(shm, os.W_OK) else tmp_path)
    )
    monkeypatch.setattr(_start, "_ns_cache", {True: 0, False: 0})
    sources = ["print(1)\n", DEEP + "print(2)\n", "print(3)\n"]
    results = run_many(sources, workers=1, timeout_s=10.0, python=usable[0])
    assert [(r.outcome, r.stdout) for r in results] == [("passed", f"{i}\n") for i in (1, 2, 3)]
    assert os.listdir(tempfile.tempdir) == []
    os.rmdir(tempfile.tempdir)


def test_the_work_dir_removal_has_no_recursion_and_no_path_length_limit(tmp_path):
    # The fallback's clean-up (no mount namespace: the program wrote to the host's disk). On a
    # tmpfs where there is one: 5,000 levels on a busy disk take seconds.
    shm = Path("/dev/shm")
    top = Path(tempfile.mkdtemp(dir=shm if os.access(shm, os.W_OK) else tmp_path)) / "tree"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(5000):
        os.mkdir("d", dir_fd=fd)
        os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    (top / "link").symlink_to(Path.home())
    _host.remove_tree(str(top.parent))
    assert not top.parent.exists() and Path.home().exists()


def test_a_failed_clean_up_is_that_programs_verdict_and_the_call_goes_on(monkeypatch):
    real = _host.remove_tree
    calls = []

    def flaky(path: str) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise RecursionError("maximum recursion depth exceeded")
        real(path)

    monkeypatch.setattr(_host, "remove_tree", flaky)
    sources = [f"print({i})\n" for i in range(3)]
    results = run_many(sources, workers=1, batch=False, timeout_s=5.0)
    assert [r.outcome for r in results] == ["passed", "sandbox_error", "passed"]
    assert results[1].exception.startswith("sandbox error: cannot remove the work dir")
    assert "RecursionError" in results[1].exception and results[2].stdout == "2\n"
    real(calls[1])  # the one left behind
    with _uids._state_lock:
        assert not _uids._quarantined


@pytest.mark.skipif(not batchable(), reason="batches need root and PID and mount namespaces")
def test_a_batch_goes_on_past_programs_whose_sandbox_failed(monkeypatch):
    # Every program's work-dir mount fails (a tmpfs option the kernel refuses): each gets its own
    # sandbox_error, in order, and the batch itself neither raises nor stops at the first.
    monkeypatch.setattr(Limits, "work_tmpfs", lambda self: "size=1m,no_such_option=1")
    results = run_batch(["print(1)\n", "print(2)\n", "print(3)\n"], Limits(timeout_s=5.0))
    assert [r.outcome for r in results] == ["sandbox_error"] * 3
    assert all("mount" in r.exception for r in results), results[0].exception


@need_root
def test_a_uid_that_cannot_be_cleared_is_quarantined_visibly(monkeypatch):
    monkeypatch.setattr(_session, "reap", lambda uid, within_s=5.0: False)
    with pytest.warns(RuntimeWarning, match="quarantined"):
        res = run_program("print(1)\n")
    assert res.outcome == "sandbox_error" and "quarantined" in res.exception
    with _uids._state_lock:
        (uid,) = _uids._quarantined
        assert uid in _uids._uids_in_use  # never handed out again by this process
    assert isolation()["quarantined_uids"] == {uid: _uids._quarantined[uid]}
    monkeypatch.undo()  # the test's own clean-up: nothing really runs under it
    with _uids._state_lock:
        del _uids._quarantined[uid]
    _uids.release_uid(uid)
    for name in os.listdir(tempfile.gettempdir()):
        if name.startswith(f"{_uids.WORK_PREFIX}u{uid}-"):
            _host.remove_tree(os.path.join(tempfile.gettempdir(), name))


MEMORY = textwrap.dedent(
    """
    import os, time
    kids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                held = bytearray(150 * 2**20)   # touched: every page is resident
            except MemoryError:
                os._exit(3)
            time.sleep(2)                       # the four holding periods overlap
            os._exit(0)
        kids.append(pid)
    # A child that exits 0 held its 150 MiB all along, while the others were allocating theirs.
    print(sum(os.waitpid(pid, 0)[1] == 0 for pid in kids))
    """
)


@need_cgroup
def test_four_processes_of_a_run_cannot_hold_more_than_its_memory_together():
    limit_mb = 200 + 8 + _types.RUN_OVERHEAD_MB  # memory_mb + disk_mb + the sandbox's own
    res = run_program(MEMORY, memory_mb=200, disk_mb=8, timeout_s=8.0)
    # Each child alone is within memory_mb (RLIMIT_AS); four together would hold 600 MiB. The
    # run's cgroup lets at most one of them hold its 150 MiB throughout (the kernel's OOM killer
    # ends the others, or the program itself).
    if res.outcome == "passed":
        assert int(res.stdout) * 150 <= limit_mb, res.stdout
    else:
        assert res.outcome == "crashed", res.describe()


@need_ns
def test_many_small_files_cannot_exceed_the_runs_disk_limit():
    src = textwrap.dedent(
        """
        import errno, os
        total = 0
        try:
            for i in range(100_000):
                with open("f%d" % i, "wb") as fh:
                    fh.write(b"x" * 65536)
                total += 65536
        except OSError as exc:
            print(total, errno.errorcode[exc.errno])
        """
    )
    res = run_program(src, disk_mb=4, max_file_mb=1, timeout_s=10.0)
    assert res.outcome == "passed", res.describe()
    total, err = res.stdout.split()
    assert int(total) <= 4 * 2**20 and err == "ENOSPC"
    # Empty files (inodes) are bounded too.
    many = "import os\nfor i in range(10**6):\n    open('e%d' % i, 'w').close()\n"
    res = run_program(many, disk_mb=4, timeout_s=10.0)
    assert res.outcome == "failed" and "No space left on device" in res.exception


EVALUATOR = textwrap.dedent(
    """
    import sys
    from loraport.sandbox import isolation, run_many
    isolation()  # probed first: run_many then batches from its first program on
    sleep = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(600)\\n"
    run_many([sleep, sleep], workers=2, batch=sys.argv[1] == "batch", timeout_s=600)
    """
)


def _descendants(pid: int) -> dict[int, int]:
    """pid -> uid of every live descendant of `pid`."""
    parent, owner = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                if fields[0] != b"Z":
                    parent[int(entry)] = int(fields[1])
                    owner[int(entry)] = os.stat(f"/proc/{entry}").st_uid
            except (OSError, IndexError):
                continue
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, ppid in parent.items():
            if ppid == p and child not in out:
                out[child] = owner[child]
                todo.append(child)
    return out


@need_root
@pytest.mark.parametrize("mode", ["batch", "single"])
def test_killing_the_evaluator_leaves_no_sandbox_process_alive(mode, monkeypatch):
    if "pid" not in ISO["namespaces"]:
        pytest.skip("needs a PID namespace (its init takes every program process with it)")
    evaluator = subprocess.Popen([sys.executable, "-c", EVALUATOR, mode])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tree = _descendants(evaluator.pid)
            if sum(1 for uid in tree.values() if uid >= _uids._FIRST_UID) >= 4:  # 2 programs + 2 daemons
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the sandboxed programs did not start: {tree}")
    finally:
        evaluator.send_signal(signal.SIGKILL)
        evaluator.wait()
    time.sleep(2.0)
    alive = _live(tree)
    assert not alive, f"sandbox processes outlived their evaluator: {sorted(alive)}"
    # What the dead evaluator left on the host (its work dirs, its runs' cgroups) goes with the
    # next process's start-up sweep: here, this one's.
    used = {uid for uid in tree.values() if uid >= _uids._FIRST_UID}
    monkeypatch.setattr(_uids, "_swept", False)
    with _uids._state_lock:
        _uids._sweep_stale()
    tmp = tempfile.gettempdir()
    assert not [n for n in os.listdir(tmp) if any(n.startswith(f"{_uids.WORK_PREFIX}u{u}-") for u in used)]
    parents = _cgroup.probe().parents.values()
    assert not [p for p in parents for u in used if os.path.exists(os.path.join(p, f"u{u}"))]


def _live(pids) -> set[int]:
    out = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                    out.add(pid)
        except OSError:
            continue
    return out


@need_root
def test_start_up_sweeps_what_a_dead_evaluator_left_under_a_uid(tmp_path, monkeypatch):
    uid = next(u for u in range(60990, 61000) if not _uids._processes_of(u) and u not in _uids._uids_in_use)
    os.close(_uids._claim(uid))  # a uid the sandbox used: its lock file exists, nobody holds it
    left = tmp_path / f"{_uids.WORK_PREFIX}u{uid}-old"
    left.mkdir()
    # And a uid in the range that the sandbox never used (another tool's box): left alone.
    other = next(u for u in range(60980, 60990) if not (_uids._UID_LOCKS / str(u)).exists())
    procs = [subprocess.Popen(["sleep", "30"], user=u, group=u) for u in (uid, other)]
    reapers = [threading.Thread(target=p.wait) for p in procs]  # what the dead evaluator's init did
    for t in reapers:
        t.start()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(_uids, "_uids_with_processes", lambda: {uid, other})
    monkeypatch.setattr(_uids, "_swept", False)
    try:
        with _uids._state_lock:
            _uids._sweep_stale()
        reapers[0].join(timeout=5)
        assert procs[0].returncode == -signal.SIGKILL and not left.exists()
        assert procs[1].poll() is None
    finally:
        procs[1].kill()
        for t in reapers:
            t.join(timeout=5)


def test_cgroup_v2_detection_and_limits_on_a_fake_hierarchy(tmp_path, monkeypatch):
    # This project's machines have cgroup v1 controllers only; the v2 path is checked on files.
    from loraport.sandbox import _cgroup

    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    support = _cgroup._v2([(str(tmp_path), "cgroup2", ["rw"])], {"": "/"})
    assert support is not None and support.version == "v2"
    parent = tmp_path / _cgroup._DIR
    assert support.parents == {"": str(parent)}
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    monkeypatch.setattr(_cgroup, "probe", lambda: support)
    monkeypatch.setattr(_cgroup.RunCgroup, "remove", lambda self: None)  # plain folders here
    cg = _cgroup.RunCgroup.create(60123, 300 * 2**20, 40)
    run = parent / "u60123"
    assert cg.paths == [str(run)]
    assert (run / "memory.max").read_text() == str(300 * 2**20)
    assert (run / "pids.max").read_text() == "40"
    cg.add(4242)
    assert (run / "cgroup.procs").read_text() == "4242"
    # No memory controller to delegate: no v2 cgroups (then v1, or none).
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    assert _cgroup._v2([(str(tmp_path), "cgroup2", ["rw"])], {"": "/"}) is None
