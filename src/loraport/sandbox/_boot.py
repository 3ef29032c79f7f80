"""Sandbox bootstrap: run as `python -I -S -c <this source> <config>` by the parent.

Never imported. It runs with the parent's privileges in a fresh session and:

1. unshares namespaces (the first candidate flag set the kernel accepts; the result goes back on the
   status pipe so the parent can cache it), then forks
2. an init process (PID 1 of the new PID namespace when there is one, still privileged) that makes
   the mount tree private, bind-mounts the work directory (and, when needed, the interpreter prefix),
   remounts everything else read-only, mounts a fresh /proc, and forks
3. the program process: it sets rlimits, drops to the sandbox uid/gid, sets no_new_privs and a
   parent-death SIGKILL, and execs the sandboxed interpreter. The init reaps whatever gets orphaned
   and, when the program process ends, reports its raw wait status on the status pipe and exits;
   the kernel then kills everything left in the PID namespace (fork bombs, setsid'd daemons).

Hardening (each where the parent found the machine supports it, see docs/sandbox.md): the bootstrap
dies with the evaluator (parent-death SIGKILL, which then takes the init and the whole PID namespace
with it) and first joins the run's cgroups; every world-writable host folder (/tmp, /run, ...) is
hidden under an empty read-only tmpfs; the work dir is a size-limited tmpfs of its own, which goes
away with the mount namespace (or, in a batch, with one umount), however deep a tree the program
built; and the program execs under a seccomp filter that libseccomp built in the parent.

The program is PID 2, not PID 1, so ordinary signal semantics apply to it (PID 1 ignores signals it
has no handler for), and its parent is a process it may not signal. The bootstrap itself only waits;
SIGTERM (the parent's timeout) makes it SIGKILL the init. Setup failures are reported on the status
pipe, which is closed on exec, so the untrusted program cannot write to it.

Batch mode (cfg["batch"], only with a PID namespace): the init runs many programs one after another
instead of one. Each gets a fresh work dir of its own (a tmpfs mounted in the batch folder), its own IPC
namespace, stdout / stderr / result files that only the init can reach, and its own wall clock,
enforced by the init; when it ends the init SIGKILLs everything else in the PID namespace (kill(-1)
from PID 1 spares only the init itself), reaps it all, empties /dev/shm and unmounts the work dir,
so nothing of one program is left for the next. One status line per program:
"done <index> <raw wait status or -> <timed out 0/1> <wall seconds>", or "error <index> <message>"
when the sandbox itself failed around that program (the batch goes on with the next).

The config is a hex-encoded marshal dump of a dict (it comes from the trusted parent; marshal and the
plain-text status lines keep json, and with it re and enum, out of this interpreter's start-up).
Status lines: "ns <flags>", "setup_error <message>", "exit <raw wait status>".
"""

import ctypes
import marshal
import os
import resource
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

_OPTION_FLAGS = {
    "ro": MS_RDONLY,
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}

_RLIMITS = {
    "AS": resource.RLIMIT_AS,
    "DATA": resource.RLIMIT_DATA,
    "CPU": resource.RLIMIT_CPU,
    "NPROC": resource.RLIMIT_NPROC,
    "FSIZE": resource.RLIMIT_FSIZE,
    "NOFILE": resource.RLIMIT_NOFILE,
    "CORE": resource.RLIMIT_CORE,
}


# What the mount set-up made private to this sandbox (so batch mode may empty it between programs),
# and a descriptor of the parent's work folder (sources in, results out), hidden from the program.
_PRIVATE = {"shm": False, "host": None}
_SHM_OPTS = "size=8m,nr_inodes=1024,mode=1777"


def _report(fd, event, value):
    text = str(value).replace("\n", " ")
    try:
        os.write(fd, f"{event} {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _mount(libc, source, target, fstype, flags, data=None):
    enc = [None if s is None else s.encode() for s in (source, target, fstype, data)]
    if libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source!r} on {target!r} failed: {os.strerror(err)}")


def _unescape(path):
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1 : i + 4].isdigit() and i + 3 < len(path):
            out.append(chr(int(path[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _mounts():
    rows = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            rows.append((_unescape(fields[4]), fields[5].split(",")))
    return rows


def _readonly_bind(libc, target):
    _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _setup_mounts(libc, cfg, flags):
    work = cfg["workdir"]
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    if cfg["readonly"]:
        # The work dir becomes a mount of its own so it stays writable when the rest goes read-only.
        _mount(libc, work, work, None, MS_BIND)
    _PRIVATE["host"] = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    if cfg["readonly"]:
        skipped = []
        for target, opts in _mounts():
            if target == work:
                continue
            keep = 0
            for opt in opts:
                keep |= _OPTION_FLAGS.get(opt, 0)
            try:
                _mount(libc, None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
            except OSError:
                skipped.append(target)
        root_ok = "/" not in skipped
        if not root_ok:
            raise OSError(f"could not remount / read-only in the sandbox mount namespace ({skipped})")
        _mount(libc, None, work, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
        # A small private /dev/shm (POSIX semaphores for multiprocessing); gone with the namespace.
        try:
            _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, _SHM_OPTS)
            _PRIVATE["shm"] = True
        except OSError:
            pass
        _hide_host_places(libc, cfg)
    _mount_work(libc, cfg, work)
    bind = cfg.get("python_bind")
    if bind:
        os.mkdir(bind["dst"], 0o755)
        _mount(libc, bind["src"], bind["dst"], None, MS_BIND | MS_REC)
        _readonly_bind(libc, bind["dst"])
    if flags & CLONE_NEWPID:
        # /proc of the new PID namespace: the program sees only its own processes.
        try:
            _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError:
            pass


def _hide_host_places(libc, cfg):
    """An empty read-only tmpfs over every world-writable host folder (sockets of X11, D-Bus and
    databases live there), /dev/null over any other socket anyone may connect to. The work dir's
    path is made again inside the cover that hides it."""
    work = cfg["workdir"]
    for cover in cfg.get("covers", ()):
        _mount(
            libc, "tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=755"
        )
        if work.startswith(cover.rstrip("/") + "/"):
            os.makedirs(work, 0o755, exist_ok=True)
        _readonly_bind(libc, cover)
    for sock in cfg.get("sockets", ()):
        try:
            _mount(libc, "/dev/null", sock, None, MS_BIND)
        except OSError:
            pass  # a socket that went away meanwhile


def _mount_work(libc, cfg, work):
    """The work dir: a size-limited tmpfs of the program's own (single run), or a root-owned one
    holding each program's (batch). The parent's folder stays reachable through _PRIVATE["host"]."""
    if cfg.get("batch"):
        _mount(libc, "tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=711")
        return
    _mount_program_work(libc, cfg, work)
    _copy(cfg["program"], os.path.join(work, cfg["program"]))


def _mount_program_work(libc, cfg, path):
    opts = cfg["work_tmpfs"] + ",mode=700"
    if cfg.get("uid") is not None:
        opts += f",uid={cfg['uid']},gid={cfg['gid']}"
    _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)


def _load_seccomp(libc, bpf):
    """Install the filter the parent built with libseccomp (struct sock_fprog over its bytes)."""

    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buf = ctypes.create_string_buffer(bpf, len(bpf))
    prog = _Prog(len(bpf) // 8, ctypes.addressof(buf))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"cannot install the seccomp filter: {os.strerror(err)}")


def _write_id_maps(uid, gid):
    with open("/proc/self/setgroups", "w") as fh:
        fh.write("deny")
    with open("/proc/self/uid_map", "w") as fh:
        fh.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as fh:
        fh.write(f"{gid} {gid} 1")


def _program(libc, cfg):
    for name, soft, hard in cfg["rlimits"]:
        resource.setrlimit(_RLIMITS[name], (soft, hard))
    uid, gid = cfg.get("uid"), cfg.get("gid")
    if uid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError(f"could not switch to uid {uid}")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # After the uid switch (a credential change clears it): die with the init.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if cfg.get("seccomp"):
        _load_seccomp(libc, cfg["seccomp"])
    try:
        os.execve(cfg["exe"], cfg["argv"], cfg["env"])
    except OSError as exc:
        raise OSError(f"cannot execute {cfg['exe']!r} as uid {os.getuid()}: {exc.strerror}") from None


def _init(libc, cfg, flags, status_fd):
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if flags & CLONE_NEWNS:
        _setup_mounts(libc, cfg, flags)
    if cfg.get("batch"):
        _batch(libc, cfg, flags, status_fd)
        return
    # Enter the work dir through its new (writable) mount, not the read-only one underneath.
    os.chdir(cfg["workdir"])
    pid = os.fork()
    if pid == 0:
        try:
            _program(libc, cfg)
        except BaseException as exc:
            _report(status_fd, "setup_error", f"{type(exc).__name__}: {exc}")
        os._exit(127)
    while True:
        try:
            done, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        if done == pid:
            _report(status_fd, "exit", status)
            return


def _kill_all_but_init():
    """SIGKILL every other process of the PID namespace and reap them all (the caller is its PID 1)."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _fresh_shm(libc):
    """A new, empty private /dev/shm in place of the last program's (no walk over what it left)."""
    libc.umount2(b"/dev/shm", MNT_DETACH)
    _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, _SHM_OPTS)


def _copy(src, dst):
    """Copy `src` (relative to the parent's work folder) to `dst`."""
    fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC, dir_fd=_PRIVATE["host"])
    with open(fd, "rb") as fh:
        data = fh.read()
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _wait_program(pid, deadline, pipes):
    """Wait for the program `pid` until `deadline`, reaping orphans and reading its output pipes
    (`pipes`: fd -> [kept bytearray, cap]; what is over the cap is read and dropped, as the parent
    does for a single run). Returns (raw wait status or None, timed out)."""
    import select
    import time

    live = list(pipes)
    while True:
        while True:
            try:
                done, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None, False
            if done == 0:
                break
            if done == pid:
                return status, False
        left = deadline - time.monotonic()
        if left <= 0:
            return None, True
        if not live:
            signal.sigtimedwait([signal.SIGCHLD], min(left, 0.05))
            continue
        ready, _, _ = select.select(live, [], [], min(left, 0.05))
        for fd in ready:
            if not _drain(fd, pipes[fd]):
                live.remove(fd)


def _drain(fd, sink):
    """Read what `fd` has now into sink ([bytearray, cap]); False at end of file."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    except OSError:
        return False
    if not data:
        return False
    kept, cap = sink
    if len(kept) < cap:
        kept += data[: cap - len(kept)]
    return True


def _batch(libc, cfg, flags, status_fd):
    if not flags & CLONE_NEWPID or os.getpid() != 1 or _PRIVATE["host"] is None:
        raise OSError("batch mode needs the init to be PID 1 of new PID and mount namespaces")
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
    for i in range(cfg["batch"]["count"]):
        work = os.path.join(cfg["workdir"], f"p{i}")
        try:
            _batch_one(libc, cfg, flags, status_fd, i, work)
        except BaseException as exc:
            # The sandbox failed around this program (never the program's own doing: it ended
            # before any of this ran): its verdict says so, and the batch goes on.
            _kill_all_but_init()
            _report(status_fd, "error", f"{i} {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            if libc.umount2(work.encode(), MNT_DETACH) == 0:
                try:
                    os.rmdir(work)
                except OSError:
                    pass


def _batch_one(libc, cfg, flags, status_fd, i, work):
    import time

    batch = cfg["batch"]
    # One byte over the cap tells the parent the stream was cut.
    caps = {"out": batch["output_cap"] + 1, "err": batch["output_cap"] + 1, "res": batch["result_cap"]}
    os.mkdir(work, 0o700)
    _mount_program_work(libc, cfg, work)
    _copy(f"src/{i}.py", os.path.join(work, cfg["program"]))
    ends = {name: os.pipe() for name in caps}  # name -> (read end, write end)
    env = dict(cfg["env"], HOME=work, TMPDIR=work)
    argv = [a.replace("{RESULT_FD}", str(ends["res"][1])) for a in cfg["argv"]]
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            # A group of its own: the parent's SIGTERM to the bootstrap's group (the batch's
            # deadline) must end the batch, not look like this program's own death.
            os.setpgid(0, 0)
            if flags & CLONE_NEWIPC and libc.unshare(ctypes.c_int(CLONE_NEWIPC)) != 0:
                raise OSError("cannot unshare an IPC namespace for the program")
            os.chdir(work)
            os.dup2(ends["out"][1], 1)
            os.dup2(ends["err"][1], 2)
            os.set_inheritable(ends["res"][1], True)
            # Nothing else of the init's crosses over (the bootstrap's own result pipe included).
            os.closerange(3, ends["res"][1])
            os.closerange(ends["res"][1] + 1, os.sysconf("SC_OPEN_MAX"))
            _program(libc, dict(cfg, env=env, argv=argv))
        except BaseException as exc:
            _report(status_fd, "setup_error", f"{type(exc).__name__}: {exc}")
        os._exit(127)
    for r, w in ends.values():
        os.close(w)
        os.set_blocking(r, False)
    sinks = {ends[name][0]: [bytearray(), cap] for name, cap in caps.items()}
    status, timed_out = _wait_program(pid, start + batch["timeout_s"], sinks)
    wall = time.monotonic() - start
    _kill_all_but_init()
    for name, (r, _) in ends.items():
        while _drain(r, sinks[r]):  # every writer is dead: this ends
            pass
        os.close(r)
        flags_w = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(f"res/{i}.{name}", flags_w, 0o600, dir_fd=_PRIVATE["host"])
        try:
            os.write(fd, bytes(sinks[r][0]))
        finally:
            os.close(fd)
    if _PRIVATE["shm"]:
        _fresh_shm(libc)
    shown = "-" if status is None else status
    _report(status_fd, "done", f"{i} {shown} {int(timed_out)} {wall:.6f}")


def main():
    cfg = marshal.loads(bytes.fromhex(sys.argv[1]))
    status_fd = cfg["status_fd"]
    os.set_inheritable(status_fd, False)
    libc = ctypes.CDLL(None, use_errno=True)
    # Die with the evaluator (the init dies with us, and the PID namespace with it). If it died
    # before this line, the parent is already someone else.
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg["parent_pid"]:
        os._exit(0)
    flags = 0
    for cand in cfg["ns_candidates"]:
        if cand == 0 or libc.unshare(ctypes.c_int(cand)) == 0:
            flags = cand
            break
    if flags & CLONE_NEWUSER:
        try:
            _write_id_maps(os.geteuid(), os.getegid())
        except OSError as exc:
            _report(status_fd, "setup_error", f"user namespace id maps: {exc}")
            os._exit(127)
    _report(status_fd, "ns", flags)
    # Nothing is forked before the parent has put this process in the run's cgroup and said so
    # (meanwhile the namespaces above were made: that hides part of the move's wait).
    go = cfg["go_fd"]
    if os.read(go, 1) != b"1":
        os._exit(127)
    os.close(go)

    pid = os.fork()
    if pid == 0:
        try:
            _init(libc, cfg, flags, status_fd)
        except BaseException as exc:
            _report(status_fd, "setup_error", f"{type(exc).__name__}: {exc}")
        os._exit(0)

    def _kill_init(signum, frame):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _kill_init)
    os.waitpid(pid, 0)
    # Skip interpreter finalisation: the parent is waiting for our pipes to close.
    os._exit(0)


if __name__ == "__main__":
    main()
