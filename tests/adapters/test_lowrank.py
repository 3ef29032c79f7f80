import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loraport.adapters.lowrank import LowRank, SpanBasis, concat, gram, refactor, refactor_dense, top_svd


def rand_lr(out, inn, r, seed):
    g = torch.Generator().manual_seed(seed)
    return LowRank(torch.randn(out, r, generator=g), torch.randn(r, inn, generator=g))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 5), r=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_gram_equals_flattened_inner_products(n, r, seed):
    xs = [rand_lr(17, 11, r, seed + i) for i in range(n)]
    flat = torch.stack([(x.B.double() @ x.A.double()).flatten() for x in xs])
    assert torch.allclose(gram(xs), flat @ flat.T, rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(r=st.integers(1, 6), k=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_refactor_is_the_best_rank_k_approximation(r, k, seed):
    x = concat([rand_lr(20, 15, r, seed), rand_lr(20, 15, r, seed + 1)])
    got = refactor(x, k)
    ref = refactor_dense(x.dense(), k)
    assert got.rank == k
    assert torch.allclose(got.dense(), ref.dense(), atol=1e-4 * float(x.dense().abs().max()))


def test_refactor_is_gauge_invariant():
    x = rand_lr(30, 20, 4, 0)
    R = torch.randn(4, 4, generator=torch.Generator().manual_seed(1)) + 3 * torch.eye(4)
    y = LowRank(x.B @ R, torch.linalg.solve(R, x.A))
    a, b = refactor(x, 4), refactor(y, 4)
    assert torch.allclose(a.B, b.B, atol=1e-4) and torch.allclose(a.A, b.A, atol=1e-4)


@pytest.mark.parametrize("n,r,out,inn", [(3, 2, 40, 30), (24, 4, 300, 200)])
def test_span_basis_combination_matches_dense(n, r, out, inn):
    xs = [rand_lr(out, inn, r, i) for i in range(n)]
    w = torch.randn(n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    got = SpanBasis(xs).combine(xs, w, r)
    dense = sum(float(wi) * x.dense() for wi, x in zip(w, xs, strict=True))
    ref = refactor_dense(dense, r)
    assert torch.allclose(got.dense(), ref.dense(), atol=1e-4 * float(ref.dense().abs().max()))


def test_top_svd_is_exact_for_low_rank_and_near_optimal_for_flat_spectra():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(400, 20, generator=g, dtype=torch.float64) @ torch.randn(20, 400, generator=g, dtype=torch.float64)
    U, S, Vh = top_svd(low, 16)
    assert torch.allclose(S, torch.linalg.svdvals(low)[:16], rtol=1e-8)
    flat = torch.randn(400, 400, generator=g, dtype=torch.float64)
    U, S, Vh = top_svd(flat, 16)
    s_ref = torch.linalg.svdvals(flat)
    err = torch.linalg.norm(flat - (U * S) @ Vh)
    best = s_ref[16:].norm()
    assert err <= 1.01 * best  # within 1% of the optimal rank-16 Frobenius error
