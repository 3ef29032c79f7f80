"""The Python API behind the CLI, with the same names: `fit`, `port`, `inspect_adapter`.

    from loraport.api import fit, port
    fit("anchors.yaml", "global_ridge", "maps/q2l")
    port("adapters/new", "meta-llama/Llama-3.2-3B-Instruct", "out/new-llama", map_dir="maps/q2l")

Each call validates everything it can before doing work (output folder, method name, options, base
configs) and writes its output atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loraport.adapters import load_adapter
from loraport.arch import arch_for
from loraport.errors import LoraportError, MethodError
from loraport.io import check_output
from loraport.port import FittedMap, apply_map, copy_port, fit_map, get_method, load_anchors


def _config(spec: str) -> Any:
    from loraport.models import load_config

    return load_config(spec)


def fit(
    anchors: str | Path,
    method: str,
    out: str | Path,
    *,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    force: bool = False,
    allow_pickle: bool = False,
) -> FittedMap:
    check_output(out, force)
    m = get_method(method, **(options or {}))
    spec = load_anchors(anchors)
    fmap = fit_map(
        spec, m, _config(spec.source_base), _config(spec.target_base), seed=seed, allow_pickle=allow_pickle
    )
    fmap.save(out, force=force)
    return fmap


def _same_shapes(a: Any, b: Any) -> bool:
    ma, mb = arch_for(a).modules(), arch_for(b).modules()
    return [(m.name, m.shape) for m in ma] == [(m.name, m.shape) for m in mb]


def port(
    adapter: str | Path,
    target_base: str,
    out: str | Path,
    *,
    map_dir: str | Path | None = None,
    anchors: str | Path | None = None,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    force: bool = False,
    allow_pickle: bool = False,
) -> Path:
    check_output(out, force)
    if map_dir is not None and (anchors is not None or method is not None):
        raise LoraportError("give either --map, or --anchors with --method, not both")
    m = get_method(method, **(options or {})) if method is not None else None
    x = load_adapter(adapter, allow_pickle=allow_pickle)
    target_config = _config(target_base)
    if m is not None and m.name == "copy":
        return copy_port(x, target_config, target_base, out, force=force)
    if map_dir is not None:
        fmap = FittedMap.load(map_dir)
    elif anchors is not None and m is not None:
        spec = load_anchors(anchors)
        fmap = fit_map(
            spec,
            m,
            _config(spec.source_base),
            _config(spec.target_base),
            seed=seed,
            allow_pickle=allow_pickle,
        )
    else:
        raise MethodError("give --map, or --anchors with --method, or --method copy")
    if not _same_shapes(fmap.target_config, target_config):
        raise LoraportError(
            f"--target-base {target_base}: its modules differ in shape from the map's target base {fmap.target_base}"
        )
    return apply_map(fmap, x, out, force=force, base_model=target_base)


_LAYER = re.compile(r"\.(\d+)\.")


def inspect_adapter(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    ad = load_adapter(path, allow_pickle=allow_pickle)
    norms: dict[str, dict[str, float]] = {}
    for mod in ad.modules:
        m = _LAYER.search(mod)
        layer = m.group(1) if m else "-"
        norms.setdefault(layer, {})[mod.rsplit(".", 1)[-1]] = ad.lowrank(mod).norm_sq() ** 0.5
    cfg = ad.config
    return {
        "path": str(ad.path),
        "base_model": ad.base_model,
        "rank": cfg["r"],
        "alpha": cfg["lora_alpha"],
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "scaling": sorted(set(ad.scalings.values())),
        "target_modules": cfg.get("target_modules"),
        "num_modules": len(ad.modules),
        "provenance": ad.provenance,
        "norms": norms,
    }
