"""A fitted map on disk: one self-contained folder that can be moved, copied and shared.

    maps/q2l/
      map.json           header: format, provenance (bases and fingerprints, method and options,
                         anchor tasks and SHA-256s, loraport version), the fitted layout, and the
                         map's own content hash
      map.safetensors    the method's state and the anchors' packed factors (see port.packing);
                         plain safetensors, no pickle
      README.md          a card for people: pair, method, N, tasks, how it was made and checked

The content hash is the SHA-256 of map.json's canonical JSON without that field; the header records
the SHA-256 of map.safetensors' own header and of each tensor's bytes, so the one hash covers both
files (the card is not covered), and a port can check tensors on two threads in any order.

A port reads map.safetensors once, front to back: a small float64/float32 section (state, scales,
coordinates), then the float16 factors in the order they are used. `MappedTensors` memory-maps the
file, hands out zero-copy views, drops pages it has finished with (so resident memory stays small
however big the map is), and hashes the bytes on two threads while the port computes, so a
truncated or edited map is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from loraport.errors import LoraportError

FORMAT = "loraport-map/2"
MAP_JSON = "map.json"
MAP_TENSORS = "map.safetensors"
MAP_CARD = "README.md"
HASH_FIELD = "content_sha256"

_DT = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
_TD = {v: k for k, v in _DT.items()}
_WIDTH = {torch.float64: 8, torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}
_CHUNK = 1 << 24


class MapError(LoraportError):
    """A map folder is missing, unreadable, of another format, or fails its content hash."""


def refit_hint(meta: dict[str, Any]) -> str:
    method = meta.get("method") or "METHOD"
    return f"re-fit it: loraport fit --anchors ANCHORS.yaml --method {method} --out NEW_MAP"


def content_hash(meta: dict[str, Any]) -> str:
    body = {k: v for k, v in meta.items() if k != HASH_FIELD}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _layout(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Write order: wider dtypes first (so every tensor is aligned for a zero-copy view), insertion
    order within a dtype (the order a port uses them)."""
    return sorted(tensors, key=lambda n: -_WIDTH[tensors[n].dtype])


def _sha256(buf: Any) -> str:
    return hashlib.sha256(buf).hexdigest()  # releases the GIL: runs beside other work


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Write a safetensors file without building it in memory; returns its size and the SHA-256
    of its header and of each tensor's bytes (hashed on two threads while the file is written)."""
    order = _layout(tensors)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in order:
        t = tensors[name]
        size = t.numel() * _WIDTH[t.dtype]
        header[name] = {
            "dtype": _DT[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    head = len(raw).to_bytes(8, "little") + raw
    with open(path, "wb") as fh, ThreadPoolExecutor(2) as pool:
        fh.write(head)
        futures = {}
        for name in order:
            buf = tensors[name].contiguous().view(-1).view(torch.uint8).numpy()
            futures[name] = pool.submit(_sha256, buf)
            fh.write(buf)
    return {
        "file": MAP_TENSORS,
        "bytes": len(head) + offset,
        "header_sha256": _sha256(head),
        "sha256": {name: f.result() for name, f in futures.items()},
    }


def write_map(
    folder: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor], card: Callable[[dict], str]
) -> None:
    """Fill an (empty, temporary) folder with the three files; `meta` gains the tensors' digests
    and the content hash, and `card(meta)` is the README."""
    meta["tensors"] = write_tensors(folder / MAP_TENSORS, tensors)
    meta[HASH_FIELD] = content_hash(meta)
    (folder / MAP_JSON).write_text(json.dumps(meta, indent=1) + "\n")
    (folder / MAP_CARD).write_text(card(meta))


def read_header(folder: str | Path) -> dict[str, Any]:
    """map.json, checked: the format (older and newer maps are refused with what to do) and the
    content hash (an edited header is refused)."""
    folder = Path(folder)
    path = folder / MAP_JSON
    if not folder.is_dir():
        raise MapError(f"{folder}: map folder not found")
    if not path.is_file():
        old = (folder / "state.safetensors").is_file()
        why = "an old-format map (state.safetensors without map.json)" if old else "missing"
        raise MapError(f"{path}: {why}; not a map written by `loraport fit`")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MapError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise MapError(f"{path}: expected a JSON object")
    fmt = meta.get("format")
    if fmt != FORMAT:
        version = fmt.rsplit("/", 1)[-1] if isinstance(fmt, str) and fmt.startswith("loraport-map/") else ""
        if version.isdigit() and int(version) < int(FORMAT.rsplit("/", 1)[-1]):
            why = "was written by an older loraport and points at its anchors instead of holding them"
            raise MapError(f"{path}: field format={fmt!r} {why}; {refit_hint(meta)}")
        raise MapError(
            f"{path}: field format={fmt!r} is not {FORMAT!r} (written by loraport "
            f"{meta.get('loraport_version', '?')}); use that version or {refit_hint(meta)}"
        )
    if meta.get(HASH_FIELD) != content_hash(meta):
        raise MapError(f"{path}: field {HASH_FIELD} does not match the header (the file was edited)")
    return meta


def _read_st_header(path: Path, error: str) -> tuple[dict[str, Any], int]:
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise MapError(f"{path}: {error} (no safetensors header)")
        n = int.from_bytes(head, "little")
        raw = fh.read(n)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise MapError(f"{path}: {error} (unreadable safetensors header)") from None
    header.pop("__metadata__", None)
    return header, 8 + n


def _stamp(path: Path, digest: str) -> Path:
    """Where a check of this file version (real path, size, mtime, inode) against a header with
    content hash `digest` is remembered (the same keying as models.cache.file_sha256)."""
    from loraport.models.cache import cache_root

    st = os.stat(path)
    key = "\0".join(map(str, (os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, digest)))
    name = hashlib.sha256(key.encode()).hexdigest()
    return cache_root() / "maps-verified" / name[:2] / name


def remember_verified(path: Path, digest: str) -> None:
    with contextlib.suppress(OSError):
        record = _stamp(path, digest)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(digest + "\n")


class MappedTensors:
    """The tensors of map.safetensors, memory-mapped, for reading front to back once.

    Unless this very file version (path, size, mtime, inode) already passed its hashes, opening
    starts two threads that hash every tensor's bytes against map.json's digests while the caller
    computes (an edit changes the mtime, so an edited map is hashed again and refused). `get(name)`
    returns a zero-copy view; `release(names)` says the caller has finished with them (their pages
    are dropped once hashed, so resident memory stays small however big the map is); `check()`
    waits for the hashes and raises MapError naming the file, the tensor and the field of the first
    mismatch."""

    def __init__(self, folder: Path, meta: dict[str, Any], *, trust_verified: bool = True) -> None:
        self.path = folder / MAP_TENSORS
        self.expected = meta["tensors"]
        self.content = meta[HASH_FIELD]
        if not self.path.is_file():
            raise MapError(f"{self.path}: missing (the map folder is incomplete)")
        size = self.path.stat().st_size
        if size != self.expected["bytes"]:
            raise MapError(
                f"{self.path}: {size} bytes where {MAP_JSON} field tensors.bytes says "
                f"{self.expected['bytes']} (truncated or replaced); {refit_hint(meta)}"
            )
        self.header, self.start = _read_st_header(self.path, "truncated or edited")
        with open(self.path, "rb") as fh:
            self._mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
        self._ranges = {"": (0, self.start)}  # "": the safetensors header itself
        for name, info in sorted(self.header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
            a, b = info["data_offsets"]
            self._ranges[name] = (self.start + a, self.start + b)
        self.verified = trust_verified and _stamp(self.path, self.content).is_file()
        self._hashes: dict[str, Future] = {}
        if not self.verified:
            self._pool = ThreadPoolExecutor(2)
            self._hashes = {n: self._pool.submit(self._digest, a, b) for n, (a, b) in self._ranges.items()}
        self._lock = threading.Lock()
        self._deferred: list[str] = []  # released by the caller, not hashed yet

    def _digest(self, a: int, b: int) -> str:
        with memoryview(self._mm) as view, view[a:b] as part:
            return _sha256(part)

    def names(self) -> Iterable[str]:
        return self.header.keys()

    def get(self, name: str) -> torch.Tensor:
        info = self.header[name]
        a, b = self._ranges[name]
        dtype = _TD[info["dtype"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a copy-on-write map is writable; torch need not warn
            t = torch.frombuffer(self._mm, dtype=dtype, count=(b - a) // _WIDTH[dtype], offset=a)
        return t.view(info["shape"])

    def release(self, names: Iterable[str]) -> None:
        """The caller has finished with these tensors: drop their pages (once hashed)."""
        with self._lock:
            for name in names:
                f = self._hashes.get(name)
                if f is not None and not f.done():
                    self._deferred.append(name)
                    continue
                a, b = self._ranges[name]
                lo = -(-a // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the range only
                hi = b // mmap.PAGESIZE * mmap.PAGESIZE
                if hi > lo:
                    self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)

    def check(self) -> None:
        if self.verified:
            return
        got = {name: f.result() for name, f in self._hashes.items()}
        self._pool.shutdown()
        self._hashes = {}
        with self._lock:
            deferred, self._deferred = self._deferred, []
        self.release(deferred)
        if got.pop("") != self.expected["header_sha256"]:
            raise MapError(
                f"{self.path}: safetensors header differs from {MAP_JSON} field tensors.header_sha256 "
                "(the file was edited or corrupted); copy the map again or re-fit it"
            )
        want = self.expected["sha256"]
        for name in sorted(set(got) | set(want), key=lambda n: self._ranges.get(n, (0, 0))):
            if got.get(name) != want.get(name):
                raise MapError(
                    f"{self.path}: tensor {name} differs from {MAP_JSON} field tensors.sha256 "
                    "(the file was edited or corrupted); copy the map again or re-fit it"
                )
        self.verified = True
        remember_verified(self.path, self.content)


def verify_tensors(folder: Path, meta: dict[str, Any]) -> None:
    """Hash map.safetensors in full against the header, whatever was remembered (`map verify`)."""
    mt = MappedTensors(folder, meta, trust_verified=False)
    mt.check()
    for name, info in mt.header.items():
        if info.get("dtype") not in _TD:
            raise MapError(f"{mt.path}: tensor {name} has unsupported dtype {info.get('dtype')}")


def open_map(folder: str | Path) -> tuple[dict[str, Any], MappedTensors]:
    folder = Path(folder)
    meta = read_header(folder)
    return meta, MappedTensors(folder, meta)
