"""The answer-position loss equals transformers' own loss; bucketed orders cover every example once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loraport.testing import build_tiny_model
from loraport.train.loss import MIN_SHARED_PREFIX, answer_loss, bucketed_order, logits_at, shared_prefix


@pytest.mark.parametrize("family", ["llama", "gemma2"])  # gemma2 soft-caps its logits
def test_answer_loss_matches_the_models_own_loss_and_gradients(family, tmp_path):
    from transformers import AutoModelForCausalLM

    kw = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=48, head_dim=16)
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(family, tmp_path / family, **kw))
    assert family != "gemma2" or model.config.final_logit_softcapping
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 256, (3, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 5:] = ids[0, 5:]
    labels[1, 2:4] = ids[1, 2:4]
    labels[2, 4:7] = ids[2, 4:7]
    ours = answer_loss(model, ids, mask, labels)
    ours.backward()
    ours_grad = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    theirs.backward()
    theirs_grad = [p.grad for p in model.parameters() if p.grad is not None]
    assert float(ours) == pytest.approx(float(theirs), abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours_grad, theirs_grad, strict=True))
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits
        rows, cols = torch.tensor([0, 2, 2]), torch.tensor([8, 0, 5])
        assert torch.allclose(logits_at(model, ids, mask, rows, cols), full[rows, cols], atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_a_shared_prefix_computed_once_gives_the_full_rows_loss_and_gradients(family, tmp_path):
    """Rows that start with the same 40 tokens (a few-shot prompt's shots) of uneven length: the
    loss from one prefix pass continued by every row equals the full rows' loss, and so do the
    gradients (also Gemma-3 with a sliding window shorter than the rows)."""
    from transformers import AutoModelForCausalLM

    kw = dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=48, head_dim=16)
    if family == "gemma3":
        kw["sliding_window"] = 24
    model = AutoModelForCausalLM.from_pretrained(build_tiny_model(family, tmp_path / family, **kw))
    g = torch.Generator().manual_seed(1)
    head = torch.randint(3, 256, (40,), generator=g)
    ids = torch.cat([head.expand(3, 40), torch.randint(3, 256, (3, 12), generator=g)], 1)
    mask = torch.ones_like(ids)
    mask[1, 47:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 44:] = ids[0, 44:]
    labels[1, 45:47] = ids[1, 45:47]
    labels[2, 41:50] = ids[2, 41:50]
    assert shared_prefix(ids, mask, labels) == 40
    losses, grads = [], []
    for share in (True, False):
        model.zero_grad()
        loss = answer_loss(model, ids, mask, labels, share_prefix=share)
        loss.backward()
        losses.append(float(loss))
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads, strict=True))


def test_the_shared_prefix_stops_before_labels_and_padding_and_needs_length():
    ids = torch.arange(60).expand(2, 60).clone()
    mask, labels = torch.ones_like(ids), torch.full_like(ids, -100)
    assert shared_prefix(ids, mask, labels) == 59  # every row keeps a token of its own
    labels[1, 50] = 7  # predicted from position 49: the prefix ends before it
    assert shared_prefix(ids, mask, labels) == 49
    ids[0, 45] = 0
    assert shared_prefix(ids, mask, labels) == 45
    mask[0, 40:] = 0
    assert shared_prefix(ids, mask, labels) == 39  # a padded position is no one's prefix
    ids[1, MIN_SHARED_PREFIX - 1] = 1
    assert shared_prefix(ids, mask, labels) == 0  # under the minimum
    assert shared_prefix(ids[:1], mask[:1], labels[:1]) == 0  # one row


def test_bucketed_order_is_a_seeded_permutation_of_length_sorted_batches():
    lengths = np.random.default_rng(1).integers(5, 90, size=203).tolist()
    order = bucketed_order(lengths, 8, [0, 0], window=4)
    assert sorted(order.tolist()) == list(range(203))  # every example exactly once
    assert np.array_equal(order, bucketed_order(lengths, 8, [0, 0], window=4))  # seeded
    assert not np.array_equal(order, bucketed_order(lengths, 8, [0, 1], window=4))
    batches = [order[i : i + 8] for i in range(0, 203, 8)]
    assert len(batches[-1]) == 203 % 8  # the one short batch is last
    spread = np.mean([np.ptp(np.asarray(lengths)[b]) for b in batches[:-1]])
    rand = np.random.default_rng(2).permutation(203)
    assert spread < 0.5 * np.mean([np.ptp(np.asarray(lengths)[rand[i : i + 8]]) for i in range(0, 200, 8)])
