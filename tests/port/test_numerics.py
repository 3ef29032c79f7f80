"""Properties of port/numerics.py on random anchor clouds: weights sum to one, Procrustes recovers
a known scaled rotation, ridge with a vanishing penalty interpolates the anchors."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loraport.port import numerics as nx

SETTINGS = settings(max_examples=40, deadline=None)


def cloud(seed: int, n: int, d: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64)


def random_orthogonal(seed: int, d: int) -> torch.Tensor:
    q, r = torch.linalg.qr(cloud(seed + 7, d, d))
    return q * torch.sign(torch.diagonal(r))


def affine_combination(seed: int, n: int) -> torch.Tensor:
    """Coefficients summing to one (some negative): a point of the anchors' affine hull."""
    a = cloud(seed + 3, 1, n)[0]
    return a - a.mean() + 1.0 / n


dims = st.integers(3, 8).flatmap(lambda n: st.tuples(st.just(n), st.integers(n + 1, n + 12)))


@SETTINGS
@given(c=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_weights_from_any_coefficients_sum_to_one(c):
    w = nx.weights_from_coeffs(torch.tensor(c, dtype=torch.float64))
    assert abs(float(w.sum()) - 1.0) < 1e-6 * max(1.0, max(abs(x) for x in c))


@SETTINGS
@given(nd=dims, seed=st.integers(0, 10_000), lam=st.sampled_from(nx.RIDGE_GRID))
def test_linear_methods_weights_sum_to_one(nd, seed, lam):
    n, d = nd
    X, Y, x = cloud(seed, n, d), cloud(seed + 1, n, d), cloud(seed + 2, 1, d)[0]
    Kx, Ky, k = X @ X.T, Y @ Y.T, X @ x
    for T in (nx.ridge_T(Kx, lam), nx.procrustes_T(Kx, Ky), nx.pca_T(Kx, Ky, components=n - 1)):
        w = nx.linear_weights(T, Kx, k)
        assert abs(float(w.sum()) - 1.0) < 1e-9


@SETTINGS
@given(nd=dims, seed=st.integers(0, 10_000), s=st.floats(0.1, 10.0))
def test_procrustes_recovers_a_known_scaled_rotation(nd, seed, s):
    """Target anchors y_j = s·x_j·R + t: a point of the source anchors' affine hull maps to s·x·R + t."""
    n, d = nd
    X, R, t = cloud(seed, n, d), random_orthogonal(seed, d), cloud(seed + 5, 1, d)[0]
    Y = s * X @ R + t
    x = affine_combination(seed, n) @ X
    w = nx.linear_weights(nx.procrustes_T(X @ X.T, Y @ Y.T, scale=True), X @ X.T, X @ x)
    want = s * x @ R + t
    assert torch.allclose(w @ Y, want, atol=1e-6 * float(want.norm()) + 1e-8)


@SETTINGS
@given(nd=dims, seed=st.integers(0, 10_000))
def test_ridge_with_a_vanishing_penalty_interpolates_the_anchors(nd, seed):
    n, d = nd
    X = cloud(seed, n, d)
    K = X @ X.T
    eye = torch.eye(n, dtype=torch.float64)

    def worst(lam: float) -> float:
        T = nx.ridge_T(K, lam)
        return max(float((nx.linear_weights(T, K, K[:, i]) - eye[i]).abs().max()) for i in range(n))

    # anchor i as the input gets the weights e_i in the limit, the error shrinking with the penalty
    assert worst(1e-8) < 1e-4
    assert worst(1e-8) < worst(1e-4) < worst(1.0)


@SETTINGS
@given(nd=dims, seed=st.integers(0, 10_000))
def test_the_source_anchor_mean_maps_to_the_target_anchor_mean(nd, seed):
    """Every linear method fits an intercept: the mean input gets the weights 1/N."""
    n, d = nd
    X, Y = cloud(seed, n, d), cloud(seed + 1, n, d)
    Kx, Ky = X @ X.T, Y @ Y.T
    k = X @ X.mean(0)
    for T in (nx.ridge_T(Kx, 1.0), nx.procrustes_T(Kx, Ky), nx.pca_T(Kx, Ky, components=n - 1)):
        assert torch.allclose(nx.linear_weights(T, Kx, k), torch.full((n,), 1.0 / n, dtype=torch.float64))
