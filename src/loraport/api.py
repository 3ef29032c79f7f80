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
    layers: str = "relative",
) -> FittedMap:
    check_output(out, force)
    m = get_method(method, **(options or {}))
    spec = load_anchors(anchors)
    fmap = fit_map(
        spec,
        m,
        _config(spec.source_base),
        _config(spec.target_base),
        seed=seed,
        allow_pickle=allow_pickle,
        layers=layers,
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
    source_base: str | None = None,
    task: str | None = None,
    prompts: str | Path | None = None,
    init: str | Path | None = None,
    eval_n: int = 300,
    eval_seed: int = 0,
    eval_data: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Port `adapter` to `target_base`. Anchor methods use `map_dir` or `anchors`; behaviour methods
    (align, spanfit, distill) also take `source_base` (default: the anchors' source, else the
    adapter's base_model), `task` (its train-split prompts, and the eval items the prompts must not
    repeat: the first `eval_n` drawn with `eval_seed`), `prompts` (a JSONL of unlabeled prompts
    instead of the task's) and, for distill, `init` (an adapter folder, or a method name in options).

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
    if m is not None and m.name == "copy":
        return copy_port(x, target_config, target_base, out, force=force)
    if m is not None and m.scope == "behaviour":
        spec = load_anchors(anchors) if anchors is not None else None
        source = source_base or (spec.source_base if spec else None) or x.base_model
        if not source:
            raise MethodError(f"method {m.name!r}: give --source-base (the adapter names no base model)")
        ctx = dict(
            source=source,
            task=task,
            prompts=prompts,
            eval_n=eval_n,
            eval_seed=eval_seed,
            anchors=anchors,
            eval_data=eval_data,
            progress=progress,
        )
        return _behaviour_port(m, x.path, target_base, out, spec, init_path, seed, force, ctx)
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


def _behaviour_port(m, x: Path, target: str, out, spec, init_path, seed: int, force: bool, ctx) -> Path:
    import tempfile

    from loraport.port.prompts import unlabeled_prompts
    from loraport.port.teacher import teach

    o = m.options()
    if m.name == "align":
        from loraport.port.align import align_port

        return align_port(ctx["source"], target, x, out, texts=o["texts"], ridge=o["ridge"], force=force)
    if ctx["task"] is None and ctx["prompts"] is None:
        raise MethodError(
            f"method {m.name!r} needs --prompts (your unlabeled prompts) or --task (a task's train prompts)"
        )
    if ctx["task"] is None:
        from loraport.port.prompts import check_disjoint_prompts, read_prompts

        prompts = read_prompts(ctx["prompts"])
    else:
        prompts = unlabeled_prompts(
            ctx["task"],
            o["prompts"],
            o["prompt_seed"],
            path=ctx["prompts"],
            n_eval=ctx["eval_n"],
            eval_seed=ctx["eval_seed"],
        )
    if ctx["eval_data"] is not None:
        from loraport.port.prompts import check_disjoint_prompts
        from loraport.tasks import load_eval_jsonl

        held = load_eval_jsonl(ctx["eval_data"])
        check_disjoint_prompts(prompts, held, n_eval=held.available("eval"), eval_seed=0)
    if m.name == "spanfit" and spec is None:
        raise MethodError(
            "method 'spanfit' needs --anchors (it refits the ridge weights over the target anchors)"
        )
    answers = teach(ctx["source"], x, prompts, max_new_tokens=o["max_new_tokens"], progress=ctx["progress"])
    if m.name == "spanfit":
        from loraport.port.spanfit import spanfit_port

        configs = _config(spec.source_base), _config(spec.target_base)
        return spanfit_port(
            spec, *configs, x, answers, out, steps=o["steps"], lr=o["lr"], seed=seed, force=force
        )
    from loraport.port.distill import distill_port

    with tempfile.TemporaryDirectory(prefix=".init-", dir=Path(out).resolve().parent) as tmp:
        if init_path is None and o["init"] != "zero":
            init_path = Path(tmp) / "init"
            port(
                x,
                target,
                init_path,
                anchors=ctx["anchors"],
                method=o["init"],
                seed=seed,
                source_base=ctx["source"],
                task=ctx["task"],
                prompts=ctx["prompts"],
                eval_n=ctx["eval_n"],
                eval_seed=ctx["eval_seed"],
                eval_data=ctx["eval_data"],
            )
        return distill_port(
            target,
            answers,
            out,
            init=init_path,
            steps=o["steps"],
            seconds=o["seconds"],
            lr=o["lr"],
            seed=seed,
            force=force,
            progress=ctx["progress"],
        )


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
