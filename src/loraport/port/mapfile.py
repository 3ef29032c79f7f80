"""A fitted map on disk: one self-contained folder that can be moved, copied and shared.

    maps/q2l/
      map.json           header: format, provenance (bases and fingerprints, method and options,
                         anchor tasks and SHA-256s, loraport version), the fitted layout, and the
                         map's own content hash
      map.safetensors    the method's state and the anchors' packed factors (see port.packing);
                         plain safetensors, no pickle
      README.md          a card for people: pair, method, N, tasks, how it was made and checked

The content hash is the SHA-256 of map.json's canonical JSON without that field; the header records
the SHA-256 of map.safetensors, so the one hash covers both files (the card is not covered).

A port reads map.safetensors once, front to back: a small float64/float32 section (state, scales,
coordinates), then the float16 factors in the order they are used. `MappedTensors` memory-maps the
file, hands out zero-copy views, drops pages it has finished with (so resident memory stays small
however big the map is), and hashes the bytes on a second thread while the port computes, so a
truncated or edited map is refused before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import threading
import warnings
from collections.abc import Callable, Iterable
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


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> tuple[str, int]:
    """Write a safetensors file without building it in memory; returns (SHA-256, size)."""
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
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        for block in (len(raw).to_bytes(8, "little"), raw):
            fh.write(block)
            h.update(block)
        for name in order:
            buf = tensors[name].contiguous().view(-1).view(torch.uint8).numpy()
            fh.write(buf)
            h.update(buf)
    return h.hexdigest(), 8 + len(raw) + offset


def write_map(
    folder: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor], card: Callable[[dict], str]
) -> None:
    """Fill an (empty, temporary) folder with the three files; `meta` gains the file hash, size
    and the content hash, and `card(meta)` is the README."""
    digest, size = write_tensors(folder / MAP_TENSORS, tensors)
    meta["tensors"] = {"file": MAP_TENSORS, "sha256": digest, "bytes": size}
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


class MappedTensors:
    """The tensors of map.safetensors, memory-mapped, for reading front to back once.

    `get(name)` returns a zero-copy view; `done(name)` says the caller has finished with it (its
    pages are dropped once the hashing thread is past them too); `check()` waits for the hash and
    raises MapError naming the file and field when it differs from the header's."""

    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        self.path = folder / MAP_TENSORS
        self.expected = meta["tensors"]
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
        self._hashed = 0
        self._pending: list[tuple[int, int]] = []  # byte ranges handed out and not yet dropped
        self._digest: str | None = None
        self._thread = threading.Thread(target=self._hash, daemon=True)
        self._thread.start()

    def _hash(self) -> None:
        h = hashlib.sha256()
        view = memoryview(self._mm)
        try:
            for a in range(0, len(view), _CHUNK):
                h.update(view[a : a + _CHUNK])  # releases the GIL: runs beside the port's maths
                self._hashed = min(a + _CHUNK, len(view))
        finally:
            view.release()
        self._digest = h.hexdigest()

    def __contains__(self, name: str) -> bool:
        return name in self.header

    def names(self) -> Iterable[str]:
        return self.header.keys()

    def get(self, name: str) -> torch.Tensor:
        info = self.header[name]
        a, b = info["data_offsets"]
        dtype = _TD[info["dtype"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a copy-on-write map is writable; torch need not warn
            t = torch.frombuffer(self._mm, dtype=dtype, count=(b - a) // _WIDTH[dtype], offset=self.start + a)
        self._pending.append((self.start + a, self.start + b))
        return t.view(info["shape"])

    def done(self, wait: bool = False) -> None:
        """The caller has finished with the tensors it got: drop their pages once the hashing
        thread is past them too (resident memory stays small however big the map is)."""
        keep = []
        for a, b in self._pending:
            if b > self._hashed and not wait:
                keep.append((a, b))
                continue
            lo = -(-a // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the range only
            hi = b // mmap.PAGESIZE * mmap.PAGESIZE
            if hi > lo:
                self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
        self._pending = keep

    def check(self) -> None:
        self._thread.join()
        self.done(wait=True)
        if self._digest != self.expected["sha256"]:
            raise MapError(
                f"{self.path}: content differs from {MAP_JSON} field tensors.sha256 "
                "(the file was edited or corrupted); copy the map again or re-fit it"
            )


def verify_tensors(folder: Path, meta: dict[str, Any]) -> None:
    """Hash map.safetensors in full against the header (what `loraport map verify` does)."""
    mt = MappedTensors(folder, meta)
    mt.check()
    for name, info in mt.header.items():
        if info.get("dtype") not in _TD:
            raise MapError(f"{mt.path}: tensor {name} has unsupported dtype {info.get('dtype')}")


def open_map(folder: str | Path) -> tuple[dict[str, Any], MappedTensors]:
    folder = Path(folder)
    meta = read_header(folder)
    return meta, MappedTensors(folder, meta)


def drop_cache(path: Path) -> bool:
    """Ask the kernel to forget a file's cached pages (for cold-read timings); False if it cannot."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        return True
    except (OSError, AttributeError):
        return False
