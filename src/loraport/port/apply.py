"""apply_map: port one adapter through a fitted map, reading the map's packed anchors once.

    apply_map(FittedMap.load("maps/qwen-to-llama"), "adapters/new-task", "out/new-task-llama")

Two passes over the map's bytes, in file order: the packed source anchors give the input's kernel
per tensor (port_weights), the method turns kernels into weights over the target anchors, and the
packed target bases turn the weights into the output's rank-r factors (combine_port). The map's
bytes are hashed meanwhile (unless this file version passed before); save_port writes nothing
unless they match. Keys are processed two at a time on two threads, torch on one thread each.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from loraport.adapters import Adapter, LowRank, load_adapter, refactor, save_adapter
from loraport.adapters.lowrank import stack_rows
from loraport.arch import arch_for
from loraport.errors import AdapterError
from loraport.io import sha256_file
from loraport.parallel import torch_threads
from loraport.port.fitted import GLOBAL, SOURCE_PARTS, TARGET_PARTS, FittedMap
from loraport.port.methods import PortMethod, get_method
from loraport.port.packing import Scratch, combine_target, source_kernel, target_anchors
from loraport.port.sides import Side


@dataclass
class PortInputs:
    """What a fitted map computes for one input adapter before anything is written: the weights
    over the target anchors per target tensor key, and the Top-K selection (None: all anchors)."""

    x: Adapter
    weights: dict[str, torch.Tensor]
    selected: torch.Tensor | None


def check_input(fmap: FittedMap, x: Adapter) -> Side:
    """The input must adapt exactly the modules the map's source anchors adapt, at their shapes."""
    sx = fmap.side("source")
    got = set(sx.arch.check_adapter(x, fmap.source_base))
    extra, missing = sorted(got - set(sx.modules)), sorted(set(sx.modules) - got)
    if extra:
        raise AdapterError(
            f"{x.path}: module {extra[0]} has no data in the map ({fmap.where}, field source_modules)"
        )
    if missing:
        raise AdapterError(
            f"{x.path}: adapts no {missing[0]}, which the map's anchors adapt ({fmap.where}, "
            "field source_modules); port adapters of the anchors' module set"
        )
    return sx


def weights_from_kernels(
    fmap: FittedMap, m: PortMethod, kin: dict[str, torch.Tensor], kxx: dict[str, float]
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(weights per target key, Top-K selection) from the input's kernel per source key."""
    k_glob = sum(kin.values()) if kin else torch.zeros(fmap.n, dtype=torch.float64)
    kxx_glob = sum(kxx.values()) if kxx else 0.0
    sel = m.select(fmap.state[GLOBAL]["Kx"], k_glob, kxx_glob)
    w_glob = m.weights(fmap.state[GLOBAL], k_glob, sel) if m.scope == "global" else None
    weights = {}
    for key in fmap.target_ranks:
        if w_glob is not None:
            weights[key] = w_glob
        else:
            src = fmap.pairing[key]
            weights[key] = m.weights(fmap.state[key], kin[src] if src else k_glob, sel)
    return weights, sel


_local = threading.local()


def _scratch() -> Scratch:
    if not hasattr(_local, "scratch"):
        _local.scratch = Scratch()
    return _local.scratch


def _stream(fmap: FittedMap, side: str, parts: tuple[str, ...], keys: list[str], fn: Callable) -> list:
    """[fn(key, its packed tensors) for key in keys], two keys at a time (torch releases the GIL
    and runs each op on one thread), each key's tensors released as soon as it is done."""

    def one(key: str) -> Any:
        names = [f"{side}/{key}/{n}" for n in parts]
        try:
            return fn(key, {n: fmap.tensors.get(name) for n, name in zip(parts, names, strict=True)})
        finally:
            fmap.tensors.release(names)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, keys))


def _norm_sq(x: LowRank) -> float:
    return float(((x.B.T @ x.B) * (x.A @ x.A.T)).sum())  # float32: it only scales Top-K cosines


def port_weights(fmap: FittedMap, adapter: str | Path | Adapter, *, allow_pickle: bool = False) -> PortInputs:
    """The weights over the target anchors that `fmap` predicts for `adapter`, per target tensor
    (reads the packed source anchors once)."""
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter, allow_pickle=allow_pickle)
    sx = check_input(fmap, x)
    m = get_method(fmap.method, **fmap.options)

    def kernel(key: str, packed: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        xl = sx.lowrank(x, key)
        return source_kernel(xl, packed, fmap.source_ranks[key], _scratch()), _norm_sq(xl)

    keys = list(fmap.source_ranks)
    results = _stream(fmap, "s", SOURCE_PARTS, keys, kernel)
    kin = {key: k for key, (k, _) in zip(keys, results, strict=True)}
    kxx = {key: n for key, (_, n) in zip(keys, results, strict=True)}
    weights, sel = weights_from_kernels(fmap, m, kin, kxx)
    return PortInputs(x, weights, sel)


def combine_port(fmap: FittedMap, weights: dict[str, torch.Tensor]) -> dict[str, LowRank]:
    """Σ_j w_j ΔW_Y,j per target module at the map's rank (fused modules: parts stacked by rows),
    reading the packed target bases once."""
    sy = fmap.side("target")

    def combine(key: str, packed: dict[str, torch.Tensor]) -> LowRank:
        return combine_target(packed, weights[key], fmap.target_ranks[key], fmap.rank, _scratch())

    keys = list(fmap.target_ranks)
    parts: dict[str, list[LowRank]] = {}
    for key, lr in zip(keys, _stream(fmap, "t", TARGET_PARTS, keys, combine), strict=True):
        parts.setdefault(sy.keys[key][0], []).append(lr)
    return {
        name: ps[0] if len(ps) == 1 else refactor(stack_rows(ps), fmap.rank) for name, ps in parts.items()
    }


def target_anchor_factors(fmap: FittedMap) -> dict[str, list[LowRank]]:
    """Each target anchor's factors per target module, rebuilt from the map (spanfit uses them)."""
    sy = fmap.side("target")
    out: dict[str, list[list[LowRank]]] = {}
    for key, ranks in fmap.target_ranks.items():
        packed = {name: fmap.tensors.get(f"t/{key}/{name}") for name in TARGET_PARTS}
        out.setdefault(sy.keys[key][0], []).append(target_anchors(packed, ranks))
    return {
        module: [ps[0] if len(ps) == 1 else stack_rows(list(ps)) for ps in zip(*per_part, strict=True)]
        for module, per_part in out.items()
    }


def save_port(
    fmap: FittedMap,
    inputs: PortInputs,
    modules: dict[str, LowRank],
    out: str | Path,
    provenance: dict[str, Any],
    *,
    force: bool = False,
    base_model: str | None = None,
) -> Path:
    """Write a port of `fmap`'s target base with the map's provenance plus `provenance`, once the
    map's bytes have passed their hash."""
    fmap.tensors.check()
    x, sel = inputs.x, inputs.selected
    prov = {
        "method": fmap.method,
        "options": fmap.options,
        "source_base": fmap.source_base,
        "target_base": fmap.target_base,
        "map_sha256": fmap.content_sha256,
        "anchor_set_hash": fmap.anchor_set_hash,
        "anchor_tasks": [a.task for a in fmap.anchors],
        "input_adapter": str(x.path),
        "input_sha256": sha256_file(x.weights_file),
        "seed": fmap.seed,
        **({"topk_selected": [fmap.anchors[i].task for i in sel.tolist()]} if sel is not None else {}),
        **provenance,
    }
    return save_adapter(
        out,
        modules,
        rank=fmap.rank,
        alpha=fmap.alpha,
        use_rslora=fmap.use_rslora,
        base_model=base_model or fmap.target_base,
        num_layers=arch_for(fmap.target_config).num_layers,
        provenance=prov,
        force=force,
    )


def apply_map(
    fmap: FittedMap,
    adapter: str | Path | Adapter,
    out: str | Path,
    *,
    force: bool = False,
    allow_pickle: bool = False,
    provenance: dict[str, Any] | None = None,
    base_model: str | None = None,
) -> Path:
    """Port one source adapter through a fitted map and write the PEFT folder for the target base
    (recorded as `base_model`, by default the map's target base). A loaded map is read once;
    if its bytes fail their hash, MapError is raised and nothing is written."""
    t0 = time.perf_counter()
    # torch on one thread per op (keys run two at a time): no OpenMP threads spinning against the
    # hash threads, and results that do not depend on the machine's core count.
    with torch_threads(1):
        try:
            inputs = port_weights(fmap, adapter, allow_pickle=allow_pickle)
            modules = combine_port(fmap, inputs.weights)
        except Exception:
            fmap.tensors.check()  # corrupted bytes explain any failure on them: say so instead
            raise
    seconds = round(time.perf_counter() - t0, 4)
    cost = {
        "seconds": round(seconds + fmap.fit_seconds, 4),
        "steps": 0,
        "generated_tokens": 0,
        "data": "anchors",
    }
    extra = {"port_seconds": seconds, "cost": cost, **(provenance or {})}
    return save_port(fmap, inputs, modules, out, extra, force=force, base_model=base_model)


def copy_port(
    adapter: str | Path | Adapter,
    target_config: Any,
    target_base: str,
    out: str | Path,
    *,
    force: bool = False,
    allow_pickle: bool = False,
) -> Path:
    """`copy`: the same ΔW on a target whose modules have identical shapes (checked module by module)."""
    x = adapter if isinstance(adapter, Adapter) else load_adapter(adapter, allow_pickle=allow_pickle)
    ay = arch_for(target_config)
    ay.check_adapter(x, target_base)
    ranks = set(x.ranks.values())
    rank = max(ranks)
    cfg = x.config
    same = len(ranks) == 1
    alpha = float(cfg["lora_alpha"]) if same else float(rank)
    modules = {mod: x.lowrank(mod) if same else refactor(x.lowrank(mod), rank) for mod in x.modules}
    prov = {
        "method": "copy",
        "source_base": x.base_model,
        "target_base": target_base,
        "input_adapter": str(x.path),
        "input_sha256": sha256_file(x.weights_file),
    }
    return save_adapter(
        out,
        modules,
        rank=rank,
        alpha=alpha,
        use_rslora=bool(cfg.get("use_rslora")) and same,
        base_model=target_base,
        num_layers=ay.num_layers,
        provenance=prov,
        force=force,
    )
