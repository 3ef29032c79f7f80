"""The content-addressed store a study run keeps its artifacts in.

    RUN_DIR/cache/adapters/<key>/     trained and ported PEFT adapters
    RUN_DIR/cache/evals/<key>.jsonl   per-item evaluation records (loraport.evaluate.EvalResult)
    RUN_DIR/cache/teach/<key>.jsonl   teacher answers to unlabeled prompts (loraport.port.teacher)
    RUN_DIR/records/<name>.json       one record per study cell (what the report reads)

The cache may live elsewhere (`cache=`, `loraport bench --cache DIR`), so studies share it: keys
say exactly what an entry is, so another study's adapter with the same inputs is the same adapter.

A key is the sha256 of a cell's inputs (base fingerprints, task, recipe, method and options, the keys
of the adapters it consumes), so nothing is computed twice and a changed input changes exactly the
keys downstream of it. Every artifact is written to a temporary sibling and renamed, so a run killed
at any moment (kill -9 included) leaves finished entries or nothing; `sweep()` removes the leftovers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from loraport.io import atomic_file


def content_key(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Store:
    def __init__(self, root: str | Path, cache: str | Path | None = None) -> None:
        self.root = Path(root)
        self.cache = Path(cache) if cache is not None else self.root / "cache"
        self.records = self.root / "records"

    def adapter(self, key: str) -> Path:
        return self.cache / "adapters" / key

    def eval(self, key: str) -> Path:
        return self.cache / "evals" / f"{key}.jsonl"

    def teach(self, key: str) -> Path:
        return self.cache / "teach" / f"{key}.jsonl"

    def has(self, kind: str, key: str) -> bool:
        """Whether the store holds the output of cell `key` of `kind` (its CellKind's `done`; by
        default, a finished adapter folder)."""
        from loraport.bench.cellkinds import CELL_KINDS, load_cell_kinds

        load_cell_kinds()
        done = CELL_KINDS.get(kind).done if kind in CELL_KINDS else None
        return done(self, key) if done is not None else (self.adapter(key) / "adapter_config.json").is_file()

    def relative(self, path: str | Path) -> str:
        """A path as records store it: relative to the run directory when it lies inside it (so a
        moved or copied run folder still resolves it), else absolute."""
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def record(self, name: str) -> Path:
        return self.records / f"{name}.json"

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        with atomic_file(self.record(name)) as fh:
            json.dump(record, fh, sort_keys=True)

    def load_records(self) -> list[dict[str, Any]]:
        if not self.records.is_dir():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.records.glob("*.json"))]

    def sweep(self) -> int:
        """Remove temporary leftovers of killed writes (hidden `.name.*.tmp` siblings)."""
        n = 0
        for sub in (self.cache / "adapters", self.cache / "evals", self.cache / "teach", self.records):
            if sub.is_dir():
                for p in sub.iterdir():
                    if p.name.startswith(".") and p.name.endswith(".tmp"):
                        shutil.rmtree(p) if p.is_dir() else p.unlink()
                        n += 1
        return n
