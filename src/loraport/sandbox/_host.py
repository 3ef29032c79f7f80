"""Host-side helpers of the sandbox: which world-writable places to hide from a program, and a
work-dir removal that nothing a program leaves behind can defeat."""

from __future__ import annotations

import os
import stat
from functools import cache

#: Always covered (when they exist) by an empty tmpfs in the sandbox's mount namespace: where
#: X11, D-Bus, databases and friends leave their sockets.
STANDARD_COVERS = ("/tmp", "/var/tmp", "/run", "/var/run", "/var/lock", "/run/lock", "/dev/mqueue")
_SKIP = ("/proc", "/sys", "/dev")
_SCAN_DEPTH = 3


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _world_writable_dir(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and bool(st.st_mode & stat.S_IWOTH)


def _mount_points() -> list[str]:
    points = []
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                points.append(line.split()[4].replace("\\040", " "))
    except OSError:
        pass
    return points


@cache
def world_writable_dirs() -> tuple[str, ...]:
    """World-writable folders on this host: every mount point that is one, and any folder up to
    three levels below / (outside /proc, /sys and /dev). Scanned once per process."""
    found = {p for p in _mount_points() if p != "/" and _world_writable_dir(p)}
    level = ["/"]
    for _ in range(_SCAN_DEPTH):
        nxt = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                path = entry.path if folder != "/" else "/" + entry.name
                if any(_under(path, s) for s in _SKIP):
                    continue
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    if entry.stat(follow_symlinks=False).st_mode & stat.S_IWOTH:
                        found.add(path)
                except OSError:
                    continue
                nxt.append(path)
        level = nxt
    return tuple(sorted(found))


def covers(keep: list[str]) -> list[str]:
    """Folders to hide under an empty read-only tmpfs: the standard ones and every world-writable
    folder found, as real paths, outermost only, none that holds a path in `keep` (the
    interpreter) or is a device folder the sandbox handles itself (/dev/shm)."""
    wanted = set()
    for path in (*STANDARD_COVERS, *world_writable_dirs()):
        if os.path.isdir(path):
            wanted.add(os.path.realpath(path))
    wanted.discard("/")
    wanted.discard("/dev/shm")
    out: list[str] = []
    for path in sorted(wanted, key=lambda p: (p.count("/"), p)):
        if any(_under(path, o) for o in out):
            continue  # hidden by an outer cover already
        if any(_under(k, path) for k in keep):
            continue
        out.append(path)
    return out


def exposed_sockets(covered: list[str]) -> list[str]:
    """Filesystem sockets bound on this host that any user may connect to (o+w) and that no
    cover hides: the sandbox bind-mounts /dev/null over each (connect() then fails)."""
    out = []
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split(None, 7)
                if len(fields) < 8 or not fields[7].startswith("/"):
                    continue
                path = fields[7].rstrip("\n")
                if any(_under(path, c) for c in covered):
                    continue
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if stat.S_ISSOCK(st.st_mode) and st.st_mode & stat.S_IWOTH:
                    out.append(path)
    except OSError:
        pass
    return sorted(set(out))


def remove_tree(path: str) -> None:
    """Remove `path` and everything under it, however deep, without recursion and without long
    paths: one directory descriptor open at a time, walking back up through "..". Nothing may run
    in the tree meanwhile (the caller has killed the program's processes). Folders the program made
    unreadable are made readable first (needed when not root). Raises OSError when something
    cannot be removed."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

    def enter(name: str, parent: int | None) -> int:
        try:
            return os.open(name, flags, dir_fd=parent)
        except PermissionError:
            os.chmod(name, 0o700, dir_fd=parent)
            return os.open(name, flags, dir_fd=parent)

    fd = enter(path, None)
    dev = os.fstat(fd).st_dev
    # stack[i]: the names still to visit in the folder at depth i, and that folder's own name
    stack: list[tuple[list[str], str]] = [([], path)]
    try:
        pending = _clear_files(fd, dev)
        stack[-1][0].extend(pending)
        while True:
            todo, _ = stack[-1]
            if todo:
                name = todo.pop()
                child = enter(name, fd)
                os.close(fd)
                fd = child
                stack.append((_clear_files(fd, dev), name))
                continue
            _, name = stack.pop()
            if not stack:
                break
            parent = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = parent
            os.rmdir(name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(path)


def _clear_files(fd: int, dev: int) -> list[str]:
    """Unlink every non-folder in the folder `fd`; return its subfolders' names."""
    folders = []
    try:
        names = os.listdir(fd)
    except PermissionError:
        os.fchmod(fd, 0o700)
        names = os.listdir(fd)
    for name in names:
        st = os.lstat(name, dir_fd=fd)
        if stat.S_ISDIR(st.st_mode):
            if st.st_dev != dev:
                raise OSError(f"{name!r} is a mount point; not removing across file systems")
            folders.append(name)
            continue
        try:
            os.unlink(name, dir_fd=fd)
        except PermissionError:
            os.fchmod(fd, 0o700)
            os.unlink(name, dir_fd=fd)
    return folders
