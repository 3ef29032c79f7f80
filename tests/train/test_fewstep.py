"""Few-step updates (train/fewstep.py) on the mini zoo: backprop is −lr·grad, DFA's feedback is
fixed for a seed, cosines are cosines, PUR's CI on constructed data, bad arguments fail first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loraport.models import load_model
from loraport.tasks import get_task
from loraport.train.fewstep import (
    FewStep,
    FewStepError,
    check_args,
    pur,
    ridge_transfer,
    sweep_lr,
    update_variance,
)


@pytest.fixture(scope="module")
def setup(mini_zoo):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: more threads only contend
    model, tok, _ = load_model(mini_zoo["y"])
    items = get_task("math_add").items("train", 12, seed=0)
    held = get_task("math_add").items("eval", 6, seed=0)
    upd = FewStep(model, tok, rank=2, seed=0)
    # a non-zero B, so both factors get gradients
    for f in upd.start.values():
        f.B.copy_(torch.randn(f.B.shape, generator=torch.Generator().manual_seed(1)) * 0.01)
    upd.reset()
    yield upd, [items[:4], items[4:8], items[8:]], held
    upd.close()
    torch.set_num_threads(threads)


def test_backprop_direction_is_the_autograd_gradient_and_one_step_is_minus_lr_grad(setup):
    upd, batches, _ = setup
    batch = upd.encode(batches[0])
    upd.reset()
    loss, _ = upd._forward(batch)
    names = sorted(upd.params)
    grads = dict(zip(names, torch.autograd.grad(loss, [upd.params[n] for n in names]), strict=True))
    d = upd.direction(batch, "backprop")
    for n in names:
        torch.testing.assert_close(d[n], grads[n], rtol=1e-4, atol=1e-7)
    before = {n: p.detach().clone() for n, p in upd.params.items()}
    upd.step(d, 0.1)
    for n in names:
        torch.testing.assert_close(upd.params[n].detach(), before[n] - 0.1 * grads[n])
    # first order: a small step lowers the loss by lr·‖g‖² up to a second-order term
    lr, g2 = 1e-3, float(sum((g**2).sum() for g in grads.values()))
    upd.reset()
    t0 = upd.loss(batch)
    upd.step(d, lr)
    dl = upd.loss(batch) - t0
    assert dl == pytest.approx(-lr * g2, rel=0.05)
    upd.reset()


def test_dfa_feedback_is_fixed_for_a_seed_and_the_update_has_the_modules_shape(setup, mini_zoo):
    upd, batches, _ = setup
    fb = upd.feedback()
    vocab = upd.model.get_output_embeddings().out_features
    for n, m in upd.modules.items():
        assert fb[n].shape == (m.out_features, vocab)
    batch = upd.encode(batches[0])
    d1, d2 = upd.direction(batch, "dfa"), upd.direction(batch, "dfa")
    for n, v in d1.items():
        assert v.shape == upd.params[n].shape and torch.equal(v, d2[n])
    model, tok, _ = load_model(mini_zoo["y"])
    same, other = FewStep(model, tok, rank=2, seed=0), FewStep(model, tok, rank=2, seed=1)
    try:
        n0 = next(iter(fb))
        assert torch.equal(same.feedback()[n0], fb[n0])
        assert not torch.equal(other.feedback()[n0], fb[n0])
    finally:
        same.close()
        other.close()


def test_run_measures_every_credit_with_cosines_in_range(setup, mini_zoo):
    upd, batches, held = setup
    model, tok, _ = load_model(mini_zoo["y"])
    src = FewStep(model, tok, rank=2, seed=0)
    for n, f in upd.start.items():  # the same base and start: transfer (identity) is backprop
        src.start[n] = f
    src.reset()
    upd.transfer_from = src
    try:
        out = {
            c: upd.run(batches, held, credit=c, k=2, lr=0.05).summary()
            for c in ("backprop", "dfa", "transfer")
        }
    finally:
        upd.transfer_from = None
        src.close()
    for s in out.values():
        assert -1.0 <= s["cosine"] <= 1.0 and s["batches"] == 3 and 0 <= s["acc_after"] <= 1
        assert s["variance"]["total"] >= 0
    assert out["backprop"]["cosine"] == pytest.approx(1.0)
    assert out["transfer"]["cosine"] == pytest.approx(1.0, abs=1e-4)
    assert out["backprop"]["d_train"] < 0
    best = sweep_lr(upd, batches, credit="backprop", k=1, lrs=[1e-4, 0.05])
    assert best["lr"] == 0.05 and set(best["d_train"]) == {1e-4, 0.05}


def test_pur_and_its_ci_on_constructed_data():
    rng = np.random.default_rng(0)
    t = -1.0 - rng.random(40)
    r = pur(t, 0.5 * t)  # held-out falls half as much on every batch
    assert r["pur"] == pytest.approx(0.5) and r["pur_ci"] == pytest.approx([0.5, 0.5])
    noisy = pur(t, 0.5 * t + rng.normal(0, 0.3, 40))
    assert noisy["pur_ci"][0] < noisy["pur"] < noisy["pur_ci"][1]
    assert update_variance(np.ones((3, 4)))["total"] == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("backprop", 0, [0.1]), r"k must be an integer ≥ 1 \(got 0\)"),
        (("dfaa", 1, [0.1]), r"unknown credit 'dfaa' \(credits: backprop, dfa, transfer\)"),
        (("dfa", 1, []), r"the step-size grid is empty"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    with pytest.raises(FewStepError, match=message) as e:
        check_args(*args)
    assert "\n" not in str(e.value)


def test_run_checks_arguments_before_any_model_work():
    class Boom:  # any model access would raise AttributeError
        pass

    upd = FewStep.__new__(FewStep)
    upd.model = Boom()
    with pytest.raises(FewStepError, match="k must be"):
        upd.run([[]], [], credit="backprop", k=0, lr=0.1)
    with pytest.raises(FewStepError, match="unknown credit"):
        sweep_lr(upd, [[]], credit="oracle", k=1, lrs=[0.1])


def test_ridge_transfer_maps_an_anchor_to_its_counterpart_and_is_linear():
    g = torch.Generator().manual_seed(0)
    xs = [{"m": torch.randn(3, 4, generator=g)} for _ in range(3)]
    ys = [{"m": torch.randn(5, 2, generator=g), "n": torch.randn(2, 2, generator=g)} for _ in range(3)]
    t = ridge_transfer(xs, ys, lam=1e-9)
    torch.testing.assert_close(t(xs[1])["m"], ys[1]["m"], rtol=1e-4, atol=1e-4)
    a, b = t({"m": xs[0]["m"]}), t({"m": 2 * xs[0]["m"] - xs[2]["m"]})
    torch.testing.assert_close(b["n"], 2 * ys[0]["n"] - ys[2]["n"], rtol=1e-4, atol=1e-4)
    assert set(a) == {"m", "n"}
    with pytest.raises(FewStepError, match="same number"):
        ridge_transfer(xs, ys[:2])
