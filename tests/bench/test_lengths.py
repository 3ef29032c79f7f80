"""A study whose training items do not fit a base's tokenizer fails before any work, naming the field."""

from __future__ import annotations

import pytest

from loraport.bench.runner import check_lengths
from loraport.bench.spec import Study, StudyError
from loraport.models import load_tokenizer
from loraport.train import Recipe


def _study(y, max_length: int) -> Study:
    return Study(
        name="fit",
        source=str(y),
        target=str(y),
        anchors=["math_add"],
        heldout=["math_sum_more"],
        methods={"mean": {}},
        n_anchors=[1],
        recipe=Recipe(examples=64, max_length=max_length),
    )


def test_items_longer_than_max_length_name_the_task_base_and_item(mini_zoo):
    y = mini_zoo["y"]
    tok = load_tokenizer(y)
    check_lengths(_study(y, 256), str(y), tok)  # fits
    with pytest.raises(StudyError) as err:
        check_lengths(_study(y, 20), str(y), tok)
    msg = str(err.value)
    assert "recipe.max_length 20 is too short for task 'math_add'" in msg and str(y) in msg
    assert "item math_add/train/" in msg and "\n" not in msg
