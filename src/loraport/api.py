"""The Python API behind the CLI, with the same names: `fit`, `port`, `verify_map`, `inspect_adapter`.

    from loraport.api import fit, port
    fit("anchors.yaml", "global_ridge", "maps/q2l")      # a self-contained map folder
    port("adapters/new", "meta-llama/Llama-3.2-3B-Instruct", "out/new-llama", map_dir="maps/q2l")
    verify_map("maps/q2l", anchors="anchors.yaml")       # `loraport map verify`

Each call validates everything it can before doing work (output folder, method name, options, base
configs) and writes its output atomically.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loraport.adapters import load_adapter
from loraport.errors import LoraportError, MethodError
from loraport.io import check_output
from loraport.port import FittedMap, PortJob, fit_map, get_method, load_anchors
from loraport.port.mapinfo import verify_map
from loraport.port.methods import apply_to_target

__all__ = ["fit", "inspect_adapter", "port", "verify_map"]


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
    layers: str = "relative",
) -> FittedMap:
    """Fit anchor method `method` (with `options`) on the anchor pairs of `anchors` (a YAML file,
    see port.anchors) and save the map folder to `out` (self-contained: it holds the anchors'
    packed factors and records both bases' fingerprints); returns it. `layers` names the layer map
    (arch.LAYER_MAPS: "relative", or "cka", which loads both bases). Behaviour methods and copy are
    not fitted: use `port` with them directly.

        fmap = fit("anchors.yaml", "topk_global_ridge", "maps/q2l", options={"k": 4})
    """
    check_output(out, force)
    m = get_method(method, **(options or {}))
    from loraport.models import resolve_model

    spec = load_anchors(anchors)
    src, tgt = resolve_model(spec.source_base), resolve_model(spec.target_base)
    fmap = fit_map(
        spec,
        m,
        src.config,
        tgt.config,
        seed=seed,
        allow_pickle=allow_pickle,
        layers=layers,
        weight_fingerprints=(src.fingerprint, tgt.fingerprint),
    )
    fmap.save(out, force=force)
    return fmap


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
    source_base: str | None = None,
    task: str | None = None,
    prompts: str | Path | None = None,
    examples: str | Path | None = None,
    init: str | Path | None = None,
    eval_n: int = 300,
    eval_seed: int = 0,
    eval_data: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Port `adapter` to `target_base` into `out`; returns `out`. The method's own `port` hook does
    the work (port.methods.PortMethod), so any registered method works here. Anchor methods use
    `map_dir` or `anchors`; behaviour methods
    (align, spanfit, distill) also take `source_base` (default: the anchors' source, else the
    adapter's base_model), `task` (its train-split prompts, and the eval items the prompts must not
    repeat: the first `eval_n` drawn with `eval_seed`), `prompts` (a JSONL of unlabeled prompts
    instead of the task's), `examples` (a JSONL of at least 3 example prompts, labels optional: new
    prompts in their style are synthesized and filtered, port.synth, up to the method's `prompts`
    option; distill's `synthesizer` option picks the base that writes them, target by default) and,
    for distill, `init` (an adapter folder, or a method name in options).

    Porting your own adapter without a registered task: give `prompts` (your unlabeled prompts) and,
    optionally, `eval_data` (a labelled JSONL, see `loraport.tasks.load_eval_jsonl`) that the prompts
    must not repeat; `loraport.evaluate.before_after` then scores base, port and teacher on it.

        port("my-smollm2-lora", "gemma3-270m", "out/gemma-lora", method="distill",
             options={"init": "align", "steps": 60}, source_base="smollm2-135m-instruct",
             prompts="prompts.jsonl", eval_data="labelled.jsonl")"""
    check_output(out, force)
    if map_dir is not None and (anchors is not None or method is not None):
        raise LoraportError("give either --map, or --anchors with --method, not both")
    if init is not None and Path(init).is_dir():
        init_path: Path | None = Path(init)
    else:
        init_path = None
        if init is not None:
            options = {**(options or {}), "init": str(init)}
    m = get_method(method, **(options or {})) if method is not None else None
    x = load_adapter(adapter, allow_pickle=allow_pickle)
    target_config = _config(target_base)
    job = PortJob(
        adapter=x,
        target_base=target_base,
        target_config=target_config,
        out=Path(out),
        anchors=anchors,
        seed=seed,
        force=force,
        allow_pickle=allow_pickle,
        source_base=source_base,
        task=task,
        prompts=prompts,
        examples=examples,
        init=init_path,
        eval_n=eval_n,
        eval_seed=eval_seed,
        eval_data=eval_data,
        progress=progress,
    )
    if m is not None:
        return m.port(job)
    if map_dir is None:
        raise MethodError("give --map, or --anchors with --method, or --method copy")
    return apply_to_target(FittedMap.load(map_dir), job)


_LAYER = re.compile(r"\.(\d+)\.")


def inspect_adapter(path: str | Path, *, allow_pickle: bool = False) -> dict[str, Any]:
    """What a PEFT LoRA folder holds: base model, rank, alpha, scaling, target modules, its
    provenance (what loraport recorded when it made it) and ‖ΔW‖_F per layer and module.

        info = inspect_adapter("out/new-llama")
        info["rank"], info["norms"]["0"]["q_proj"]
    """
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
