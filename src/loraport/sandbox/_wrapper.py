"""Runs inside the sandboxed interpreter: `python -I -S -B -X utf8 -c <this source> RESULT_FD PATH`.

Never imported. It disables socket creation, runs the program at PATH as `__main__`, and writes one
line to RESULT_FD saying how the program ended:

    completed                       it ran to its last line
    exception <Type> <line>         it raised; <line> is the last traceback line, unicode_escape'd
    exit <code>                     it raised SystemExit

A program that dies some other way (os._exit, a signal, a C crash) writes nothing, which the parent
reads as "did not complete". The untrusted program can write to RESULT_FD too; the parent treats the
line as a hint from the program, not as proof (see the package docstring). Only cheap modules are
imported before the program runs (no json, re or traceback), to keep start-up fast.
"""

import sys


def _main():
    import _socket
    import builtins
    import errno
    import os

    result_fd = int(sys.argv[1])
    path = sys.argv[2]

    def report(*words):
        text = " ".join(str(w).encode("unicode_escape").decode("ascii") for w in words)
        try:
            os.write(result_fd, (text + "\n").encode("ascii"))
        except (OSError, ValueError):
            pass

    # A clear error for ordinary library code that tries the network. Patching _socket before
    # anything imports `socket` makes socket.socket (a subclass of _socket.socket) refuse too. Not
    # a boundary: a program can undo it (drop _socket from sys.modules and import it again, or use
    # ctypes); the seccomp filter and the namespaces are what stop it (see docs/sandbox.md).
    def _refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "network access is disabled in the sandbox")

    class _NoSocket(_socket.socket):
        __slots__ = ()

        def __init__(self, *args, **kwargs):
            _refuse()

    _socket.socket = _socket.SocketType = _NoSocket
    _socket.socketpair = _refuse

    module = type(sys)("__main__")
    module.__file__ = path
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = [path]

    def flush():
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass

    try:
        with open(path, "rb") as fh:
            source = fh.read()
        code = compile(source, path, "exec", dont_inherit=True)
        exec(code, module.__dict__)
    except SystemExit as exc:
        flush()
        report("exit", exc.code if isinstance(exc.code, int | None) else str(exc.code)[:500])
        raise
    except MemoryError:
        report("exception", "MemoryError", "MemoryError")
        flush()
        os._exit(1)
    except BaseException as exc:
        try:
            import traceback

            line = traceback.format_exception_only(exc)[-1].strip()
        except BaseException:
            traceback = None
            line = type(exc).__name__
        report("exception", type(exc).__name__, line[:2000])
        if traceback is not None:
            try:
                # Drop this wrapper's own frame: the traceback starts in the program.
                tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
                traceback.print_exception(type(exc), exc, tb)
            except BaseException:
                pass
        flush()
        os._exit(1)
    flush()
    report("completed")


if __name__ == "__main__":
    _main()
