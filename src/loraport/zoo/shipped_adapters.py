"""Source adapters shipped with the zoo: the demo ports the same LoRA on every machine.

A LoRA trained on the zoo's source base differs from machine to machine for the reason the zoo's
weights do (float kernels), and a port of it differs with it: with everything else fixed, align's
result on the starter moved by 7 of 300 items between two CPU kernel paths, more than its CI. In
the porting a user does, the source adapter is an input, the same file wherever it is ported. So
the package carries the starter study's source adapters (`shipped_adapters/<base>__<task>/`:
adapter_model.safetensors, adapter_config.json and the training record train_log.json) and
`shipped_adapters/MANIFEST.json` with the exact base fingerprint, task and recipe each was trained
with and each file's sha256. Everything on the target side (anchors, oracles, ports,
distillations) is still computed where the study runs.

A study opts in with `source_adapters: shipped`; each source training whose base fingerprint, task
and recipe equal a shipped entry's is then a copy of it, checked against the manifest (a tampered
file is a one-line error), under a cache key of its own (its sha256), so a cache never mixes a
shipped adapter with one trained here. A training with no shipped match is trained as usual.

    entry = find_shipped(fingerprint, "code_paren", recipe)   # None when nothing shipped matches
    copy_shipped(entry["name"], out_folder)                   # checked, atomic
    python -m loraport.zoo.shipped_adapters studies/starter.yaml RUN/cache   # maintainers
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from loraport.errors import ModelLoadError
from loraport.io import atomic_dir, atomic_file, sha256_file
from loraport.zoo.shipped import manifest_table, verify_folder

#: Where the shipped adapters live (tests point it at a temporary copy).
ADAPTERS_ROOT = Path(__file__).parent / "shipped_adapters"
MANIFEST = "MANIFEST.json"
FORMAT = 1
FILES = ("adapter_config.json", "adapter_model.safetensors", "train_log.json")


def read_manifest(root: Path | None = None) -> dict[str, Any]:
    """The manifest's `adapters` table ({} when none are shipped); one-line errors name the file."""
    path = (ADAPTERS_ROOT if root is None else Path(root)) / MANIFEST
    return manifest_table(path, "adapters", FORMAT, "shipped-adapter")


def find_shipped(
    fingerprint: str, task: str, recipe: dict[str, Any], root: Path | None = None
) -> dict[str, Any] | None:
    """The shipped entry trained on the base with this fingerprint, for `task`, with exactly this
    recipe (a Recipe's JSON dump), with its `name` added; None when none matches."""
    for name, entry in read_manifest(root).items():
        if entry["fingerprint"] == fingerprint and entry["task"] == task and entry["recipe"] == recipe:
            return {**entry, "name": name}
    return None


def copy_shipped(name: str, out: str | Path, root: Path | None = None) -> Path:
    """Copy shipped adapter `name` into the folder `out` (replaced atomically), every file checked
    against the manifest first; ModelLoadError names the first bad file."""
    root = ADAPTERS_ROOT if root is None else Path(root)
    entry = read_manifest(root).get(name)
    if entry is None:
        raise ModelLoadError(f"{root / MANIFEST}: no shipped adapter {name!r}; reinstall loraport")
    folder = root / name
    how = "reinstall loraport to restore it, or set `source_adapters: train` in the study to train it here"
    verify_folder(name, folder, entry["files"], how=how, what="the shipped adapters")
    with atomic_dir(out, force=True) as tmp:
        for fname in entry["files"]:
            if fname != "train_log.json":
                shutil.copyfile(folder / fname, tmp / fname)
        log = json.loads((folder / "train_log.json").read_text())
        log["shipped"] = {"name": name, "sha256": entry["files"]["adapter_model.safetensors"]["sha256"]}
        (tmp / "train_log.json").write_text(json.dumps(log, indent=1) + "\n")
    return Path(out)


def ship(study_path: str | Path, cache: str | Path, root: Path | None = None) -> dict[str, Any]:
    """Copy the source-side trainings of a port study from a bench cache (where a run of the study
    computed them, with `source_adapters: train`) into `root` (default: the package's
    shipped_adapters/) and record them in the manifest; returns the manifest."""
    from loraport.bench.runner import plan_study
    from loraport.bench.spec import load_study
    from loraport.bench.store import Store

    study = load_study(study_path).model_copy(update={"source_adapters": "train"})
    plan = plan_study(study)
    fps = plan.fingerprints
    store = Store(Path(cache).parent, cache=Path(cache))
    root = ADAPTERS_ROOT if root is None else Path(root)
    adapters = read_manifest(root)
    for cell in plan.cells.values():
        p = cell.params
        if cell.kind != "train" or p["base"] != study.source:
            continue
        src = store.adapter(cell.key)
        if not (src / "adapter_model.safetensors").is_file():
            raise ModelLoadError(f"{src}: {cell.label} is not in the cache; run the study into it first")
        name = f"{study.source}__{p['task']}"
        dest = root / name
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for fname in FILES:
            shutil.copyfile(src / fname, dest / fname)
        cfg = json.loads((dest / "adapter_config.json").read_text())
        cfg["base_model_name_or_path"] = study.source  # not the building machine's path
        (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        log = json.loads((dest / "train_log.json").read_text())
        adapters[name] = {
            "base": study.source,
            "fingerprint": fps[study.source],
            "task": p["task"],
            "recipe": p["recipe"],
            "trained_with": {k: log.get(k) for k in ("loraport_version", "machine", "steps", "seconds")},
            "files": {
                f: {"bytes": (dest / f).stat().st_size, "sha256": sha256_file(dest / f)} for f in FILES
            },
        }
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT, "adapters": dict(sorted(adapters.items()))}
    with atomic_file(root / MANIFEST) as fh:
        fh.write(json.dumps(manifest, indent=1) + "\n")  # type: ignore[attr-defined]
    return manifest


if __name__ == "__main__":  # python -m loraport.zoo.shipped_adapters STUDY CACHE
    for n, e in ship(sys.argv[1], sys.argv[2])["adapters"].items():
        print(n, e["files"]["adapter_model.safetensors"]["sha256"][:16], ADAPTERS_ROOT / n)
