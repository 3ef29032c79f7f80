"""Each regularizer changes training the way its formula says (against no regularizer, same seed and
items), and bad names or strengths fail in one line naming the closest regularizer."""

from __future__ import annotations

import pytest
import torch
import yaml
from pydantic import ValidationError

from loraport.adapters import LowRank
from loraport.diagnostics import merged, singular_values, state_change
from loraport.models import load_model
from loraport.quant import calibration_batches, quantize_model
from loraport.tasks import get_task
from loraport.train import Recipe, train_on_items
from loraport.train.data import collate, encode_examples
from loraport.train.regularizers import REGULARIZERS, RegularizerError, get_regularizer

SMALL = Recipe(rank=4, alpha=8, epochs=2, examples=16, batch=8, lr=1e-2)


@pytest.fixture(scope="module")
def setup(mini_zoo):
    model, tok, _ = load_model(mini_zoo["y"])
    items = get_task("math_add").items("train", 16)
    runs: dict[tuple, object] = {}

    def train(regularizer: str | None = None, strength: float | None = None, steps: int | None = None):
        key = (regularizer, strength, steps)
        if key not in runs:
            before = {k: v.clone() for k, v in model.state_dict().items()}
            recipe = SMALL.model_copy(update={"regularizer": regularizer, "strength": strength})
            runs[key] = train_on_items(model, tok, items, recipe, progress=False, steps=steps)
            after = model.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before), "the base must come back as it was"
        return runs[key]

    return model, tok, items, train


def _total(modules: dict[str, LowRank], fn) -> float:
    return sum(fn(lr) for lr in modules.values())


def test_the_registry_has_eight_documented_mechanisms():
    names = REGULARIZERS.names()
    assert len(names) >= 7
    assert {"l2_delta", "spectral", "nuclear", "orthogonal_a", "hidden_change", "entropy"} <= set(names)
    assert {"fake_quant", "weight_clip"} <= set(names)
    assert all(get_regularizer(n).formula for n in names)


def test_l2_delta_shrinks_the_update(setup):
    *_, train = setup
    fro = lambda lr: lr.norm_sq()  # noqa: E731
    assert _total(train("l2_delta", 1.0).modules, fro) < 0.5 * _total(train().modules, fro)


def test_spectral_shrinks_the_top_singular_values(setup):
    *_, train = setup
    top = lambda lr: float(singular_values(lr)[0]) ** 2  # noqa: E731
    assert _total(train("spectral", 1.0).modules, top) < 0.5 * _total(train().modules, top)


def test_nuclear_shrinks_the_nuclear_norm(setup):
    *_, train = setup
    nuc = lambda lr: float(singular_values(lr).sum())  # noqa: E731
    assert _total(train("nuclear", 0.1).modules, nuc) < 0.5 * _total(train().modules, nuc)


def test_orthogonal_a_makes_the_down_projections_orthonormal(setup):
    *_, train = setup

    def off(lr: LowRank) -> float:
        return float(((lr.A @ lr.A.T - torch.eye(lr.rank)) ** 2).sum())

    assert _total(train("orthogonal_a", 1.0).modules, off) < 0.5 * _total(train().modules, off)


def test_hidden_change_keeps_the_states_closer_to_the_base(setup):
    model, tok, items, train = setup
    batches = calibration_batches(tok, [it.prompt + it.answer for it in items])
    plain = sum(state_change(model, train().modules, batches))
    kept = sum(state_change(model, train("hidden_change", 10.0).modules, batches))
    assert kept < 0.7 * plain


def test_entropy_keeps_the_answer_distribution_broader(setup):
    model, tok, items, train = setup
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batch = collate(encode_examples(tok, items, SMALL.max_length, "test"), pad)

    def answer_entropy(modules: dict[str, LowRank]) -> float:
        with merged(model, modules), torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        rows, cols = (batch["labels"][:, 1:] != -100).nonzero(as_tuple=True)
        logp = torch.log_softmax(logits[rows, cols].double(), -1)
        return float(-(logp.exp() * logp).sum(-1).mean())

    assert answer_entropy(train("entropy", 5.0).modules) > answer_entropy(train().modules) + 0.05


def test_fake_quant_trains_on_the_quantized_base(setup, mini_zoo):
    _, tok, items, train = setup
    # At step 0 B = 0, so the first loss is the base's: with fake_quant (λ = 1), the int4 base's.
    first = train("fake_quant", 1.0, steps=1).losses[0]
    quantized, _, _ = load_model(mini_zoo["y"])
    quantize_model(quantized, "int4_sym_row")
    want = train_on_items(quantized, tok, items, SMALL, progress=False, steps=1).losses[0]
    assert first == pytest.approx(want, abs=1e-5)
    assert abs(first - train(steps=1).losses[0]) > 1e-4  # and not the full-precision base's


def test_weight_clip_bounds_every_entry(setup):
    *_, train = setup
    biggest = lambda lr: float(lr.dense().abs().max())  # noqa: E731
    free = max(biggest(lr) for lr in train().modules.values())
    bound = free / 3
    clipped = max(biggest(lr) for lr in train("weight_clip", bound).modules.values())
    assert clipped <= bound * (1 + 1e-5) < free


def test_unknown_regularizer_and_bad_strengths_fail_in_one_line():
    with pytest.raises(ValidationError, match=r"unknown regularizer 'l2delta' \(did you mean 'l2_delta'\?\)"):
        Recipe(regularizer="l2delta")
    with pytest.raises(
        ValidationError, match=r"strength 2 is out of range for regularizer 'fake_quant': 0 < strength ≤ 1"
    ):
        Recipe(regularizer="fake_quant", strength=2.0)
    with pytest.raises(ValidationError, match=r"strength -0\.1 is out of range for regularizer 'l2_delta'"):
        Recipe(regularizer="l2_delta", strength=-0.1)
    with pytest.raises(ValidationError, match=r"strength 0\.5 is set but no regularizer is named"):
        Recipe(strength=0.5)
    with pytest.raises(RegularizerError, match="did you mean 'entropy'"):
        get_regularizer("entropi")


def test_a_study_file_names_the_line_of_a_bad_regularizer(tmp_path):
    from loraport.bench import StudyError, load_study

    study = {
        "name": "s",
        "source": "tiny-qwen2-x",
        "target": "tiny-llama-y",
        "anchors": ["math_add", "math_sub"],
        "heldout": ["math_sum_more"],
        "methods": {"mean": {}},
        "n_anchors": [2],
        "recipe": {"rank": 4, "regularizer": "spectrl", "strength": 0.1},
    }
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert "\n" not in message and "line" in message and "did you mean 'spectral'" in message
    study["recipe"] = {"regularizer": "spectral", "strength": 1e9}
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    with pytest.raises(StudyError, match="out of range for regularizer 'spectral'"):
        load_study(path)


def test_recipes_without_a_regularizer_keep_their_dump_and_digest():
    plain = Recipe()
    assert "regularizer" not in plain.model_dump() and "strength" not in plain.model_dump()
    assert Recipe.model_validate(plain.model_dump()) == plain
    reg = Recipe(regularizer="l2_delta", strength=0.1)
    assert reg.model_dump()["regularizer"] == "l2_delta" and reg.digest() != plain.digest()
    assert Recipe.model_validate(reg.model_dump()) == reg
    default = Recipe(regularizer="fake_quant")
    assert (
        default.strength == 1.0 and default.digest() == Recipe(regularizer="fake_quant", strength=1).digest()
    )
