"""Properties every user of the anchor methods relies on."""

from __future__ import annotations

import pytest
import torch

from loraport.adapters import LowRank, load_adapter, refactor_dense, save_adapter
from loraport.models import load_config
from loraport.port import METHODS, FittedMap, apply_map, copy_port, fit_map, load_anchors

ANCHOR_METHODS = [m for m in METHODS.names() if METHODS.get(m).scope in ("global", "pertensor")]
OPTS = {"topk_global_ridge": {"k": 3}, "topk_pertensor_ridge": {"k": 3}, "pertensor_mlp": {"steps": 100}}


def _fit(anchor_set, method, **opts):
    spec = load_anchors(anchor_set)
    return fit_map(
        spec,
        method,
        load_config(spec.source_base),
        load_config(spec.target_base),
        options={**OPTS.get(method, {}), **opts},
    )


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# A map packs the anchors in float16: a port is within 1e-3 (relative Frobenius) of the exact one.
PACKED = 1e-3


def test_mean_is_the_average_target_anchor(anchor_set, tmp_path):
    fm = _fit(anchor_set, "mean")
    out = load_adapter(apply_map(fm, anchor_set.parent / "x" / "held", tmp_path / "out"))
    ys = [load_adapter(anchor_set.parent / "y" / f"t{i}") for i in range(6)]
    for mod in out.modules:
        avg = sum(y.delta(mod) for y in ys) / len(ys)
        assert _rel(out.delta(mod), refactor_dense(avg, out.ranks[mod]).dense()) < PACKED


@pytest.mark.parametrize(
    "method", ["global_ridge", "pertensor_ridge", "topk_global_ridge", "topk_pertensor_ridge"]
)
def test_vanishing_ridge_maps_each_anchor_to_its_own_target(anchor_set, tmp_path, method):
    fm = _fit(anchor_set, method, ridge=1e-10)
    for i in (0, 3, 5):
        out = load_adapter(apply_map(fm, anchor_set.parent / "x" / f"t{i}", tmp_path / f"o{i}"))
        y = load_adapter(anchor_set.parent / "y" / f"t{i}")
        worst = max(_rel(out.delta(m), y.delta(m)) for m in out.modules)
        assert worst < PACKED, (method, i, worst)


def test_auto_ridge_shrinks_towards_mean_when_anchors_are_unrelated(anchor_set):
    # Synthetic X and Y adapters are independent draws: leave-one-out must prefer heavy shrinkage.
    fm = _fit(anchor_set, "global_ridge")
    assert float(fm.state["__global__"]["lam"]) >= 1.0


@pytest.mark.parametrize("method", ANCHOR_METHODS)
def test_regauging_the_input_leaves_the_port_unchanged(anchor_set, tmp_path, method):
    fm = _fit(anchor_set, method)
    src = load_adapter(anchor_set.parent / "x" / "held")
    g = torch.Generator().manual_seed(3)
    regauged = {}
    for mod in src.modules:
        lr = src.lowrank(mod)
        R = torch.randn(lr.rank, lr.rank, generator=g) + 2 * torch.eye(lr.rank)
        regauged[mod] = LowRank(lr.B @ R, torch.linalg.solve(R, lr.A))
    save_adapter(
        tmp_path / "regauged",
        regauged,
        rank=src.config["r"],
        alpha=src.config["lora_alpha"],
        base_model=src.base_model,
    )
    a = load_adapter(apply_map(fm, src.path, tmp_path / "a"))
    b = load_adapter(apply_map(fm, tmp_path / "regauged", tmp_path / "b"))
    for mod in a.modules:
        assert _rel(b.delta(mod), a.delta(mod)) < 1e-4, (method, mod)


@pytest.mark.parametrize("method", ANCHOR_METHODS)
def test_saved_map_ports_exactly_like_the_fitted_one(anchor_set, tmp_path, method):
    fm = _fit(anchor_set, method)
    fm.save(tmp_path / "map")
    loaded = FittedMap.load(tmp_path / "map")
    a = load_adapter(apply_map(fm, anchor_set.parent / "x" / "held", tmp_path / "a"))
    b = load_adapter(apply_map(loaded, anchor_set.parent / "x" / "held", tmp_path / "b"))
    assert b.provenance["anchor_set_hash"] == a.provenance["anchor_set_hash"]
    for mod in a.modules:
        assert _rel(b.delta(mod), a.delta(mod)) < 1e-4


def test_topk_logs_its_selection_and_includes_the_nearest_anchor(anchor_set, tmp_path):
    fm = _fit(anchor_set, "topk_global_ridge")
    out = load_adapter(apply_map(fm, anchor_set.parent / "x" / "t4", tmp_path / "o"))
    assert out.provenance["topk_selected"][0] == "t4" and len(out.provenance["topk_selected"]) == 3


def test_port_provenance(anchor_set, tmp_path):
    fm = _fit(anchor_set, "pertensor_ridge")
    out = load_adapter(apply_map(fm, anchor_set.parent / "x" / "held", tmp_path / "o"))
    p = out.provenance
    assert p["method"] == "pertensor_ridge" and p["seed"] == 0 and len(p["anchor_set_hash"]) == 64
    assert p["anchor_tasks"] == [f"t{i}" for i in range(6)] and "loraport_version" in p
    assert out.base_model == fm.target_base


def test_copy_between_identical_models_is_the_identity(anchor_set, tiny_models, tmp_path):
    src = load_adapter(anchor_set.parent / "y" / "t0")  # a Llama adapter, onto the same Llama shapes
    out = load_adapter(copy_port(src, load_config(str(tiny_models["llama"])), "llama-copy", tmp_path / "c"))
    assert out.modules == src.modules
    for mod in src.modules:
        assert torch.allclose(out.delta(mod), src.delta(mod), atol=1e-7)


def test_copy_refuses_different_shapes(anchor_set, tiny_models, tmp_path):
    from loraport.errors import AdapterError

    with pytest.raises(AdapterError, match="expects"):
        copy_port(
            anchor_set.parent / "x" / "t0", load_config(str(tiny_models["llama"])), "llama", tmp_path / "c"
        )
    assert not (tmp_path / "c").exists()
