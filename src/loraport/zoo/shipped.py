"""The zoo as shipped: the built models inside the package, every file checked by sha256.

Float results of a zoo build depend on the CPU's kernels (not only on the thread count), so the same
build code gives other weights on another machine, and every number measured on them moves. The
package therefore carries the built models (`shipped/<name>/`: config, safetensors weights,
tokenizer, generation config and the build record zoo.json) and `shipped/MANIFEST.json` with each
file's size and sha256. A zoo name loads those files, checked against the manifest, with no build.

    folder = shipped_folder(get_spec("tiny-llama-y"))   # checked; None if not shipped or spec edited
    checks = compare_with_shipped("tiny-llama-y", rebuilt_folder)   # per file: matches or not
    python -m loraport.zoo.shipped tiny-qwen2-x tiny-llama-y   # maintainers: ship the cached builds

A shipped model serves its name only while its zoo.yaml entry equals the spec it was built from and
BUILD_VERSION is unchanged: an edited entry is another model, built from scratch into the cache as
before. The build code's own digest is recorded but not required to match, so editing code that the
build shares (the training loop) does not drop everyone back to building; `loraport zoo build
--from-scratch` is the check that the current code still produces the shipped bytes.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraport.errors import ModelLoadError
from loraport.io import atomic_file, sha256_file
from loraport.models.resolve import ZOO_MARKER, folder_fingerprint

if TYPE_CHECKING:
    from loraport.zoo.build import ZooSpec

#: Where the shipped models live (tests point it at a temporary copy).
SHIPPED_ROOT = Path(__file__).parent / "shipped"
MANIFEST = "MANIFEST.json"
FORMAT = 1
#: The files a shipped model consists of; zoo.json is its build record (loss curve, build time),
#: shipped for `loraport zoo list` but, like everywhere else, not part of the model's fingerprint.
FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    ZOO_MARKER,
)


@dataclass(frozen=True)
class FileCheck:
    """One file of a rebuilt model against the shipped one."""

    name: str
    shipped: str | None  # sha256 in the manifest; None when the manifest lacks the file
    rebuilt: str | None  # sha256 of the rebuilt file; None when the build wrote no such file

    @property
    def matches(self) -> bool:
        return self.shipped is not None and self.shipped == self.rebuilt


def shipped_root(root: Path | None = None) -> Path:
    """`root`, or the package's shipped/ folder (SHIPPED_ROOT, read at call time)."""
    return SHIPPED_ROOT if root is None else Path(root)


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    """The manifest's `models` table ({} when nothing is shipped); one-line errors name the file."""
    return manifest_table(shipped_root(root) / MANIFEST, "models", FORMAT, "shipped-zoo")


def manifest_table(path: Path, table: str, fmt: int, what: str) -> dict[str, Any]:
    """The `table` of the package manifest at `path` ({} when the file is absent); a manifest that
    does not parse, or is of another format, is a one-line ModelLoadError naming the file."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data[table]
        if data.get("format") != fmt or not isinstance(entries, dict):
            raise ValueError(f"expected format {fmt} with a {table} table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{path}: unreadable {what} manifest ({exc}); reinstall loraport") from None
    return entries


def shipped_entry(spec: ZooSpec, root: Path | None = None) -> dict[str, Any] | None:
    """The manifest entry that serves `spec`, or None (not shipped, or built from another spec)."""
    from loraport.zoo.build import BUILD_VERSION

    entry = read_manifest(root).get(spec.name)
    if entry is None or entry.get("build_version") != BUILD_VERSION:
        return None
    return entry if entry.get("spec") == spec.model_dump(mode="json") else None


def shipped_folder(spec: ZooSpec, root: Path | None = None) -> Path | None:
    """The shipped folder of `spec`, its files checked against the manifest (ModelLoadError naming
    the first bad file); None when no shipped model serves this spec."""
    entry = shipped_entry(spec, root)
    if entry is None:
        return None
    folder = shipped_root(root) / spec.name
    verify_folder(spec.name, folder, entry["files"])
    return folder


# Checked files by (path, size, mtime_ns, inode): a process hashes a shipped model once, and a file
# written since (a different size, mtime or inode) is hashed again.
_verified: set[tuple[str, int, int, int, str]] = set()


def verify_folder(
    name: str, folder: Path, files: dict[str, dict[str, Any]], how: str | None = None, what: str = "the shipped zoo"
) -> None:
    """Raise ModelLoadError (one line, naming the file) unless `folder` holds exactly `files`, each
    with the size and sha256 the manifest gives; `how` says how to restore it (default: the zoo's
    way), `what` names the collection (the shipped adapters use this check too)."""
    if how is None:
        how = (
            f"reinstall loraport to restore it (or pass a rebuild as the base: "
            f"`loraport zoo build --from-scratch {name}` prints its folder)"
        )
    for fname, want in files.items():
        path = folder / fname
        if not path.is_file():
            raise ModelLoadError(f"{path}: missing from {what} (listed in {MANIFEST}); {how}")
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, want["sha256"])
        if key in _verified:
            continue
        if st.st_size != want["bytes"]:
            raise ModelLoadError(
                f"{path}: {st.st_size} bytes, but {MANIFEST} says {want['bytes']} "
                f"(truncated or replaced); {how}"
            )
        got = sha256_file(path)
        if got != want["sha256"]:
            raise ModelLoadError(
                f"{path}: sha256 {got[:16]}… does not match {MANIFEST} ({want['sha256'][:16]}…); {how}"
            )
        _verified.add(key)
    extra = sorted(
        p.name for p in folder.iterdir() if p.is_file() and p.name not in files and not p.name.startswith(".")
    )
    if extra:
        raise ModelLoadError(f"{folder / extra[0]}: not part of {what} (not in {MANIFEST}); {how}")


def compare_with_shipped(name: str, folder: Path, root: Path | None = None) -> list[FileCheck] | None:
    """Each model file of `folder` (a rebuild of `name`) against the shipped hashes; None when
    `name` is not shipped. The build record is left out: its build time differs on every build."""
    entry = read_manifest(root).get(name)
    if entry is None:
        return None
    files = entry["files"]
    names = [
        f for f in dict.fromkeys([*files, *(p.name for p in sorted(folder.iterdir()))]) if f != ZOO_MARKER
    ]
    checks = []
    for fname in names:
        path = folder / fname
        if path.name.startswith(".") or (path.exists() and not path.is_file()):
            continue
        rebuilt = sha256_file(path) if path.is_file() else None
        checks.append(FileCheck(fname, files.get(fname, {}).get("sha256"), rebuilt))
    return checks


def ship(names: list[str], root: Path | None = None) -> dict[str, Any]:
    """Copy the cached builds of `names` byte for byte into `root` (default: the package's
    shipped/) and record them in the manifest; returns the manifest. Each must be built already
    (`loraport zoo build --from-scratch NAME` on the machine whose build everyone should share)."""
    from loraport.zoo.build import BUILD_VERSION, get_spec

    root = shipped_root(root)
    models = read_manifest(root)
    for name in names:
        spec = get_spec(name)
        src = spec.folder()
        if not (src / ZOO_MARKER).is_file():
            raise ModelLoadError(
                f"{src}: {name} is not built; run `loraport zoo build --from-scratch {name}`"
            )
        present = sorted(p.name for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
        if sorted(FILES) != present:
            raise ModelLoadError(f"{src}: holds {present}, expected exactly {sorted(FILES)}")
        dest = root / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for fname in FILES:
            shutil.copyfile(src / fname, dest / fname)
        record = json.loads((src / ZOO_MARKER).read_text())
        models[name] = {
            "digest": spec.digest(),
            "fingerprint": folder_fingerprint(dest),
            "build_version": BUILD_VERSION,
            "spec": spec.model_dump(mode="json"),
            "built_with": {"versions": record.get("versions"), "threads": record.get("threads")},
            "files": {
                f: {"bytes": (dest / f).stat().st_size, "sha256": sha256_file(dest / f)} for f in FILES
            },
        }
    manifest = {"format": FORMAT, "models": dict(sorted(models.items()))}
    with atomic_file(root / MANIFEST) as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")  # type: ignore[attr-defined]
    return manifest


if __name__ == "__main__":  # python -m loraport.zoo.shipped NAME...: ship the cached builds
    out = ship(sys.argv[1:] or ["tiny-qwen2-x", "tiny-llama-y"])
    for n, e in out["models"].items():
        print(n, e["fingerprint"], SHIPPED_ROOT / n)
