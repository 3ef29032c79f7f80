"""align: the data-free port from the two bases and generic text."""

from __future__ import annotations

import itertools

import pytest
import torch

from loraport.adapters import load_adapter
from loraport.adapters.synthetic import synthetic_adapter
from loraport.arch import arch_for
from loraport.errors import AdapterError, MethodError
from loraport.models import load_config, load_model, load_tokenizer
from loraport.port.activations import pair_tokens
from loraport.port.align import (
    Alignment,
    align_port,
    apply_alignment,
    cached_alignment,
    cka_matrix,
    fit_alignment,
    monotone_layer_map,
)
from loraport.testing import build_tiny_model

TEXTS = 128  # enough paired positions on the mini zoo for full-rank covariances (widest module: 448)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _deltas(path) -> dict[str, torch.Tensor]:
    ad = load_adapter(path)
    return {m: ad.delta(m) for m in ad.modules}


@pytest.fixture(scope="module")
def bases(mini_zoo) -> tuple[str, str]:
    return str(mini_zoo["x"]), str(mini_zoo["y"])


@pytest.fixture(scope="module")
def xy(bases) -> Alignment:
    return fit_alignment(*bases, texts=TEXTS)


@pytest.fixture(scope="module")
def x_adapter(bases, tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "x-adapter"
    return synthetic_adapter(load_config(bases[0]), out, rank=4, seed=3, base_model=bases[0])


def test_cka_is_one_on_identical_inputs_and_invariant_to_rotation_and_scale():
    g = torch.Generator().manual_seed(0)
    h, other = torch.randn(300, 12, generator=g), torch.randn(300, 9, generator=g)
    rot, _ = torch.linalg.qr(torch.randn(12, 12, generator=g, dtype=torch.float64))
    cka = cka_matrix([h, other], [h, 3.0 * h.double() @ rot])
    assert torch.allclose(cka[0], torch.ones(2, dtype=torch.float64), atol=1e-10)
    assert cka[1, 0] < 0.5
    assert cka[1, 0] == pytest.approx(float(cka[1, 1]), rel=1e-9)


def test_layer_map_is_identity_when_the_diagonal_wins():
    cka = 0.5 + 0.4 * torch.eye(4) + 0.05 * torch.rand(4, 4, generator=torch.Generator().manual_seed(1))
    assert monotone_layer_map(cka) == [0, 1, 2, 3]


def test_layer_map_onto_fewer_target_layers_is_monotone():
    cka = torch.tensor([[0.9, 0.2, 0.1], [0.7, 0.6, 0.2], [0.2, 0.8, 0.3], [0.1, 0.3, 0.9]])
    assert monotone_layer_map(cka) == [0, 0, 1, 2]
    # a crossing optimum is not allowed: layer 1 prefers target 0 but follows layer 0 onto target 2
    assert monotone_layer_map(torch.tensor([[0.1, 0.1, 1.0], [0.5, 0.0, 0.4]])) == [2, 2]


@pytest.mark.parametrize("shape", [(5, 3), (4, 4), (3, 5)])
def test_layer_map_is_optimal_against_brute_force(shape):
    cka = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    got = monotone_layer_map(cka)
    total = sum(float(cka[s, t]) for s, t in enumerate(got))
    best = max(
        sum(float(cka[s, t]) for s, t in enumerate(m))
        for m in itertools.combinations_with_replacement(range(shape[1]), shape[0])
    )
    assert all(a <= b for a, b in itertools.pairwise(got))
    assert total == pytest.approx(best, abs=1e-12)


def test_positions_pair_where_both_tokens_end_at_the_same_character(bases):
    tx, ty = load_tokenizer(bases[0]), load_tokenizer(bases[1])  # bytes vs BPE
    text = "tom had 3 cups. café ok"
    end_x = [e for _, e in tx(text, return_offsets_mapping=True)["offset_mapping"]]
    end_y = [e for _, e in ty(text, return_offsets_mapping=True)["offset_mapping"]]
    (ex,), (ey,) = pair_tokens(tx, ty, [text])
    # byte-level X has every character boundary, so every distinct Y end offset pairs
    assert [end_x[i] for i in ex.positions] == [end_y[i] for i in ey.positions] == sorted(set(end_y))
    # "é" is two byte tokens ending at the same character: the second, which has read it whole, pairs
    first, second = [i for i, e in enumerate(end_x) if e == text.index("é") + 1]
    assert second in ex.positions and first not in ex.positions
    (sx,), (sy,) = pair_tokens(ty, ty, [text])  # BPE with BPE: the shared end offsets
    assert sx.positions == sy.positions == ey.positions


@pytest.mark.parametrize(
    "family, shape",
    [
        ("llama", dict(hidden_size=96, num_layers=3, num_heads=6, num_kv_heads=6, intermediate_size=160)),
        ("phi3", dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=96)),
    ],
)
def test_port_onto_the_same_model_is_exact(family, shape, bases, tmp_path):
    """Random-init bases (the 4-step zoo builds have attention outputs of numerically deficient
    rank, which no data-free map can see) with the zoo's BPE tokenizer; phi3 has fused modules."""
    tok = load_tokenizer(bases[1])
    model, _, _ = load_model(
        build_tiny_model(family, tmp_path / "m", vocab_size=len(tok), **shape), tokenizer=False
    )
    ad = synthetic_adapter(model.config, tmp_path / "in", rank=4, seed=5)
    al = fit_alignment((model, tok), (model, tok), texts=TEXTS, ridge=1e-12)
    assert al.layer_map == list(range(shape["num_layers"]))
    assert torch.allclose(al.cka.diagonal(), torch.ones(shape["num_layers"], dtype=torch.float64))
    ported, original = _deltas(apply_alignment(al, ad, tmp_path / "out")), _deltas(ad)
    assert ported.keys() == original.keys()
    for mod, delta in original.items():
        assert _rel(ported[mod], delta) < 1e-3, mod


def test_x_to_y_port_fits_the_target(xy, x_adapter, bases, tmp_path):
    out = load_adapter(apply_alignment(xy, x_adapter, tmp_path / "out", provenance={"note": "t"}))
    cy = load_config(bases[1])
    infos = arch_for(cy).check_adapter(out, bases[1])
    assert (
        set(out.ranks.values()) == {4}
        and out.config["lora_alpha"] == load_adapter(x_adapter).config["lora_alpha"]
    )
    assert {i.layer for i in infos.values()} == set(xy.layer_map)  # target layers without a source get none
    assert len({i.local for i in infos.values()}) == 7
    p = out.provenance
    assert p["method"] == "align" and p["note"] == "t" and p["layer_map"] == xy.layer_map
    assert len(p["layer_map"]) == arch_for(load_config(bases[0])).num_layers
    assert all(a <= b for a, b in itertools.pairwise(p["layer_map"]))
    assert p["n_pairs"] == xy.n_pairs >= 2 * 448
    cost = p["cost"]
    assert cost["steps"] == 0 and cost["generated_tokens"] == 0 and cost["data"] == "generic text"
    assert cost["text_tokens"] == xy.n_pairs
    assert cost["seconds"] == pytest.approx(cost["fit_seconds"] + cost["apply_seconds"], abs=1e-3)
    assert all(torch.isfinite(d).all() and d.norm() > 0 for d in _deltas(tmp_path / "out").values())


def test_align_port_is_deterministic(xy, x_adapter, bases, tmp_path):
    a = _deltas(apply_alignment(xy, x_adapter, tmp_path / "a"))
    b = _deltas(align_port(*bases, x_adapter, tmp_path / "b", texts=TEXTS))  # a fresh fit
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[m], b[m], rtol=1e-5, atol=1e-9) for m in a)


def test_alignment_save_load_round_trip(xy, x_adapter, tmp_path):
    loaded = Alignment.load(xy.save(tmp_path / "al"))
    assert loaded.layer_map == xy.layer_map and torch.equal(loaded.cka, xy.cka)
    assert loaded.maps.keys() == xy.maps.keys() and loaded.options == xy.options
    a = _deltas(apply_alignment(xy, x_adapter, tmp_path / "a"))
    b = _deltas(apply_alignment(loaded, x_adapter, tmp_path / "b"))
    assert all(torch.equal(a[m], b[m]) for m in a)


def test_too_few_paired_positions_is_a_clear_error(bases):
    with pytest.raises(MethodError, match=r"only \d+ paired token positions from 1 texts"):
        fit_alignment(*bases, texts=["a"])


def test_a_line_count_too_small_for_the_bases_grows_until_the_fit_is_determined(bases):
    al = fit_alignment(*bases, texts=8)  # eight lines pair far fewer positions than the bases need
    assert al.options["texts"] == 8 and al.options["texts_drawn"] > 8
    assert al.maps


def test_an_adapter_of_the_wrong_base_is_refused(xy, bases, tmp_path):
    y_adapter = synthetic_adapter(load_config(bases[1]), tmp_path / "y", rank=4)
    with pytest.raises(AdapterError, match="ΔW shape"):
        apply_alignment(xy, y_adapter, tmp_path / "out")


def test_a_fit_is_kept_on_disk_and_served_to_a_new_process(bases, tmp_path, monkeypatch):
    """cached_alignment stores its fit under the cache root, keyed by the bases' fingerprints and the
    options; a process that has not fitted (the in-process memo emptied) loads it instead of fitting,
    and a damaged stored fit is fitted again."""
    import loraport.port.align as align_mod

    monkeypatch.setenv("LORAPORT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(align_mod, "_FITS", {})
    first = cached_alignment(*bases, texts=TEXTS)
    (stored,) = (tmp_path / "cache" / "alignments").iterdir()
    assert Alignment.load(stored).layer_map == first.layer_map

    monkeypatch.setattr(align_mod, "_FITS", {})
    fits = []
    real_fit = align_mod.fit_alignment
    monkeypatch.setattr(align_mod, "fit_alignment", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    again = cached_alignment(*bases, texts=TEXTS)
    assert not fits and again.maps.keys() == first.maps.keys()
    assert all(torch.equal(again.maps[k][0], first.maps[k][0]) for k in first.maps)
    assert cached_alignment(*bases, texts=TEXTS, seed=1) is not again and fits == [1]  # other options: a fit

    monkeypatch.setattr(align_mod, "_FITS", {})
    (stored / "alignment.safetensors").write_bytes(b"damaged")
    cached_alignment(*bases, texts=TEXTS)
    assert fits == [1, 1] and Alignment.load(stored).layer_map == first.layer_map
