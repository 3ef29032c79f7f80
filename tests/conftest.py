"""Shared fixtures: tiny real-architecture checkpoints and synthetic anchor sets, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from loraport.adapters.synthetic import synthetic_adapter
from loraport.models import load_config
from loraport.testing import build_tiny_model

# Different families, widths, depths and head layouts (GQA vs MHA, explicit head_dim on Gemma-3).
TINY = {
    "qwen2": dict(hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=128),
    "llama": dict(hidden_size=96, num_layers=3, num_heads=6, num_kv_heads=6, intermediate_size=160),
    "gemma3": dict(
        hidden_size=80, num_layers=5, num_heads=2, num_kv_heads=1, intermediate_size=144, head_dim=48
    ),
    "phi3": dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96),
}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {fam: build_tiny_model(fam, root / fam, seed=i, **kw) for i, (fam, kw) in enumerate(TINY.items())}


def make_anchor_set(root: Path, src: Path, tgt: Path, n: int, *, rank: int = 4, seed0: int = 0) -> Path:
    """n synthetic anchor pairs plus a held-out pair (task 'held'), and the ANCHORS.yaml naming them."""
    cx, cy = load_config(str(src)), load_config(str(tgt))
    pairs = []
    for i in range(n + 1):
        task = f"t{i}" if i < n else "held"
        synthetic_adapter(cx, root / "x" / task, rank=rank, seed=seed0 + i, base_model=str(src), task=task)
        synthetic_adapter(
            cy, root / "y" / task, rank=rank, seed=seed0 + 1000 + i, base_model=str(tgt), task=task
        )
        if i < n:
            pairs.append({"task": task, "source": f"x/{task}", "target": f"y/{task}"})
    path = root / "anchors.yaml"
    path.write_text(yaml.safe_dump({"source_base": str(src), "target_base": str(tgt), "pairs": pairs}))
    return path


@pytest.fixture(scope="session")
def anchor_set(tiny_models, tmp_path_factory) -> Path:
    """6 Qwen2→Llama anchor pairs (+ held-out 'held')."""
    return make_anchor_set(tmp_path_factory.mktemp("anchors"), tiny_models["qwen2"], tiny_models["llama"], 6)


@pytest.fixture(scope="session")
def mini_zoo(tmp_path_factory) -> dict[str, Path]:
    """The default zoo pair, built for real but with a few pretraining steps on a small corpus
    (so CI exercises the build path in seconds). Keys: "x", "y"; values: checkpoint folders."""
    from loraport.zoo import get_spec
    from loraport.zoo.build import build

    cache = tmp_path_factory.mktemp("zoo-cache")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORAPORT_CACHE", str(cache))
        for key, name in (("x", "tiny-qwen2-x"), ("y", "tiny-llama-y")):
            spec = get_spec(name).with_overrides(steps=4).model_copy(update={"corpus_lines": 1500})
            out[key] = build(spec, progress=False)
    return out
