"""Batches: many programs through one sandbox start, each ending exactly as it would alone, and
nothing of one reaching the next."""

from __future__ import annotations

import textwrap
import time

import pytest

from loraport.errors import SandboxError
from loraport.sandbox import (
    Limits,
    SandboxResult,
    batch,
    batchable,
    isolation,
    run_batch,
    run_many,
    run_program,
)

pytestmark = pytest.mark.skipif(
    not (isolation() and batchable()), reason="batches need root and a PID namespace"
)

LIMITS = {"timeout_s": 1.0, "memory_mb": 256}

# One of every way a program ends (the single-run tests show each is classified right alone).
ENDINGS = [
    "print('hello')\n",
    "x = 1\nassert x == 2, 'x was %d' % x\n",
    "def f(:\n  pass\n",
    "import sys\nsys.exit(2)\n",
    "import sys\nsys.exit(0)\nassert False\n",
    "import os\nos._exit(3)\n",
    "import ctypes\nctypes.string_at(0)\n",
    "input()\n",
    "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n",
    "while True:\n    pass\n",
    "import threading, time\nthreading.Thread(target=time.sleep, args=(60,)).start()\n",
    "x = []\nwhile True:\n    x.append(bytearray(10**7))\n",
    "import sys\nsys.stdout.write('y' * 200000)\nsys.stderr.write('e')\n",
    "import sys\nsys.stdout.write('y' * 20_000_000)\nsys.stderr.write('done')\n",
    "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
    "open('f.txt', 'w').write('kept'); print(open('f.txt').read())\n",
    "open('/tmp/loraport-escape', 'w')\n",
    "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
]


def _shape(res: SandboxResult) -> tuple:
    # The traceback names the program's own folder, which differs between the two ways of running.
    return (res.outcome, res.exception, res.returncode, res.completed, res.stdout, res.stdout_truncated)


def test_every_ending_is_the_same_in_a_batch_as_alone():
    together = run_batch(ENDINGS, Limits(**LIMITS))
    alone = [run_program(src, **LIMITS) for src in ENDINGS]
    assert [_shape(r) for r in together] == [_shape(r) for r in alone]
    flood = together[
        ENDINGS.index("import sys\nsys.stdout.write('y' * 20_000_000)\nsys.stderr.write('done')\n")
    ]
    assert flood.outcome == "passed" and flood.stdout_truncated and flood.stderr == "done"
    assert len(flood.stdout) == Limits().max_output_bytes
    assert together[1].stderr.rstrip().endswith("AssertionError: x was 1")
    # A program that times out costs its own wall clock, not the batch's.
    assert 1.0 <= together[9].wall_s < 2.0 and together[0].wall_s < 1.0


def test_nothing_of_one_program_reaches_the_next():
    leave = textwrap.dedent(
        """
        import ctypes, os, time
        open('left.txt', 'w').write('x')
        open('/dev/shm/left', 'w').write('x')
        libc = ctypes.CDLL(None)
        assert libc.shmget(0x1234, 4096, 0o1666) >= 0   # IPC_CREAT | 0666: a SysV segment
        if os.fork() == 0:                             # a daemon that outlives the program
            os.setsid()
            time.sleep(30)
            os._exit(0)
        print(os.getcwd())
        """
    )
    look = textwrap.dedent(
        """
        import ctypes, os
        others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in (1, os.getpid())]
        before = os.path.join(os.path.dirname(os.getcwd()), 'p0')
        print(sorted(os.listdir('.')), os.listdir('/dev/shm'), others, os.path.exists(before))
        print(ctypes.CDLL(None).shmget(0x1234, 0, 0) == -1, len(os.listdir('/proc/self/fd')))
        """
    )
    first, second = run_batch([leave, look], Limits(**LIMITS))
    assert first.outcome == "passed", first.describe()
    assert second.outcome == "passed", second.describe()
    # Open descriptors: stdin, stdout, stderr, the result pipe, and listdir's own.
    assert second.stdout.splitlines() == ["['main.py'] [] [] False", "True 5"]


def test_a_fork_bomb_in_a_batch_leaves_the_rest_of_it_alone():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    start = time.monotonic()
    results = run_batch([bomb, "print(sum(range(10)))\n"], Limits(timeout_s=1.5, max_processes=32))
    assert results[0].outcome in ("timed_out", "crashed")
    assert results[1].outcome == "passed" and results[1].stdout == "45\n" and results[1].wall_s < 1.0
    assert time.monotonic() - start < 5.0


def test_run_many_runs_alone_what_a_batch_did_not_finish(monkeypatch):
    # A batch whose own deadline leaves no slack ends part-way; its remaining programs run alone.
    monkeypatch.setattr(batch, "_batch_wall", lambda count, limits: 1.5)
    sources = [f"import time\ntime.sleep(0.6)\nprint({i})\n" for i in range(3)]
    cut = run_batch(sources, Limits(timeout_s=1.0))
    assert cut[-1] is None  # never a program the batch's own kill ended, reported as its death
    assert all(r.outcome == "passed" for r in cut if r is not None)
    results = run_many(sources, workers=1, timeout_s=1.0)
    assert [(r.outcome, r.stdout) for r in results] == [("passed", f"{i}\n") for i in range(3)]


def test_run_many_gives_the_same_results_with_and_without_batches():
    sources = [f"assert {i} % 3 != 0, {i}\nprint({i})\n" for i in range(30)]
    batched = run_many(sources, timeout_s=2.0)
    single = run_many(sources, timeout_s=2.0, batch=False)
    assert [_shape(r) for r in batched] == [_shape(r) for r in single]
    assert [r.outcome for r in batched] == ["failed" if i % 3 == 0 else "passed" for i in range(30)]


def test_without_a_pid_namespace_there_are_no_batches(monkeypatch):
    from loraport.sandbox import _start

    monkeypatch.setattr(_start, "_ns_cache", {True: _start.CLONE_NEWNET, False: _start.CLONE_NEWNET})
    assert batchable() is False
    with pytest.raises(SandboxError, match="needs root and a PID namespace"):
        run_batch(["pass\n"], Limits())
