"""Diagnostics on adapters with known spectra: singular values, effective/stable rank, energy,
depth profile, subspace overlap, cosine and PCA."""

from __future__ import annotations

import math

import pytest
import torch

from loraport.adapters import LowRank
from loraport.diagnostics import (
    adapter_overlap,
    adapter_pca,
    delta_cosine,
    depth_profile,
    module_spectra,
    singular_values,
    spectrum_stats,
    subspace_overlap,
)


def orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


def known(sigma: list[float], out: int = 40, inp: int = 30, seed: int = 0, gauge: bool = True) -> LowRank:
    """ΔW = U·diag(σ)·Vᵀ, factored in a random gauge (B = U·diag(σ)·R, A = R⁻¹·Vᵀ)."""
    k = len(sigma)
    U, V = orthonormal(out, k, seed), orthonormal(inp, k, seed + 100)
    B, A = U * torch.tensor(sigma, dtype=torch.float64), V.T
    if gauge:
        R = torch.randn(
            k, k, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64
        ) + 3 * torch.eye(k)
        B, A = B @ R, torch.linalg.solve(R, A)
    return LowRank(B.float(), A.float())


def test_singular_values_of_a_known_spectrum():
    s = singular_values(known([4.0, 2.0, 1.0, 0.5]))
    assert torch.allclose(s, torch.tensor([4.0, 2.0, 1.0, 0.5], dtype=torch.float64), atol=1e-4)


def test_equal_singular_values():
    st = spectrum_stats(singular_values(known([1.0] * 4)))
    assert st.effective_rank == pytest.approx(4.0, abs=1e-4)
    assert st.stable_rank == pytest.approx(4.0, abs=1e-4)
    assert st.rank90 == 4 and st.top_energy == pytest.approx(1.0)
    assert st.norm == pytest.approx(2.0, abs=1e-4) and st.top == pytest.approx(1.0, abs=1e-4)


def test_a_decaying_spectrum_by_hand():
    sigma = [3.0, 1.0, 1.0, 0.0]
    st = spectrum_stats(singular_values(known(sigma, gauge=False)), k=1)
    p = [3 / 5, 1 / 5, 1 / 5]
    assert st.effective_rank == pytest.approx(math.exp(-sum(x * math.log(x) for x in p)), abs=1e-4)
    assert st.stable_rank == pytest.approx(11 / 9, abs=1e-4)
    assert st.top_energy == pytest.approx(9 / 11, abs=1e-4)
    assert st.rank90 == 2  # 9/11 = 0.82 < 0.9 ≤ 10/11
    rank1 = spectrum_stats(singular_values(known([2.0], gauge=False)))
    assert rank1.effective_rank == pytest.approx(1.0) and rank1.stable_rank == pytest.approx(1.0)


def test_zero_delta():
    st = spectrum_stats(singular_values(LowRank(torch.zeros(5, 2), torch.randn(2, 6))))
    assert (st.effective_rank, st.stable_rank, st.rank90, st.top_energy) == (0.0, 0.0, 0, 0.0)


def test_depth_profile_and_module_spectra():
    mods = {
        f"model.layers.{i}.{part}.{role}": known([float(i + 1)], seed=i)
        for i in range(3)
        for part, role in (("self_attn", "q_proj"), ("mlp", "down_proj"))
    }
    del mods["model.layers.1.mlp.down_proj"]
    prof = depth_profile(mods)
    assert prof["q_proj"] == pytest.approx([1.0, 2.0, 3.0], abs=1e-4)
    assert prof["down_proj"] == pytest.approx([1.0, 0.0, 3.0], abs=1e-4)
    spec = module_spectra(mods)
    assert spec["model.layers.2.self_attn.q_proj"].top == pytest.approx(3.0, abs=1e-4)


def test_subspace_overlap_and_cosine():
    out, inp = 40, 30
    U = orthonormal(out, 4, 1)
    V = orthonormal(inp, 4, 2)

    def make(cols, s=None):
        s = s or [1.0] * len(cols)
        return LowRank((U[:, cols] * torch.tensor(s, dtype=torch.float64)).float(), V[:, cols].T.float())

    a, b, c = make([0, 1]), make([1, 2]), make([2, 3])
    assert subspace_overlap(a, a) == pytest.approx(1.0, abs=1e-6)
    assert subspace_overlap(a, b) == pytest.approx(0.5, abs=1e-6)
    assert subspace_overlap(a, c) == pytest.approx(0.0, abs=1e-6)
    assert subspace_overlap(a, b, side="right") == pytest.approx(0.5, abs=1e-6)
    assert subspace_overlap(make([0, 1], [5.0, 1.0]), make([0, 2], [5.0, 1.0]), k=1) == pytest.approx(
        1.0, abs=1e-6
    )
    assert delta_cosine(a, b) == pytest.approx(0.5, abs=1e-6)  # ⟨a, b⟩ = 1, ‖a‖ = ‖b‖ = √2
    assert delta_cosine(a, c) == pytest.approx(0.0, abs=1e-6)
    assert delta_cosine(a, a.scaled(-2.0)) == pytest.approx(-1.0, abs=1e-6)
    ov = adapter_overlap({"m1": a, "m2": a}, {"m1": b, "m2": c, "m3": a})
    assert set(ov.modules) == {"m1", "m2"} and ov.overlap == pytest.approx(0.25, abs=1e-6)


def test_pca_recovers_a_plane_of_adapters():
    # adapter i = x_i·D1 + y_i·D2 (+ a shared offset) with orthonormal D1, D2: a 2-D cloud
    U, V = orthonormal(20, 3, 3), orthonormal(16, 3, 4)
    D = [LowRank(U[:, [j]].float(), V[:, [j]].T.float()) for j in range(3)]
    pts = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 1.0], [3.0, 1.0], [1.5, 0.5]])
    ads = []
    for x, y in pts.tolist():
        lr = LowRank(torch.cat([D[0].B * x, D[1].B * y, D[2].B * 2.0], 1), torch.cat([d.A for d in D], 0))
        ads.append({"mod": lr, "mod2": LowRank(torch.zeros(4, 1), torch.ones(1, 4))})
    p2 = adapter_pca(ads, dims=2)
    assert sum(p2.explained) == pytest.approx(1.0, abs=1e-6)
    assert p2.explained[0] == pytest.approx(0.9, abs=1e-6)  # variance of x 1.8, of y 0.2
    dist = torch.cdist(p2.coords.float(), p2.coords.float())
    assert torch.allclose(dist, torch.cdist(pts, pts), atol=1e-4)
    p3 = adapter_pca(ads, dims=3)
    assert p3.coords.shape == (5, 3) and p3.explained[2] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="dims must be 2 or 3"):
        adapter_pca(ads, dims=4)
