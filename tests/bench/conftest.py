from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from loraport.bench import load_study, run_study


def write_mini_spec(mini_zoo, folder: Path, **changes: Any) -> Path:
    """A study on the mini zoo small enough for CI (3 anchors, 2 held-out tasks, N in {2, 3}, 12
    eval items), with `changes` applied to its fields; written to folder/study.yaml."""
    spec = {
        "name": "mini",
        "source": str(mini_zoo["x"]),
        "target": str(mini_zoo["y"]),
        "anchors": ["math_add", "math_sub", "sci_color"],
        "heldout": ["math_sum_more", "sci_which"],
        "methods": {"mean": {}, "topk_global_ridge": {"k": [2, 3]}},
        "n_anchors": [2, 3],
        "seeds": [0, 1],
        "recipe": {"rank": 2, "alpha": 4, "epochs": 1, "examples": 8, "batch": 8, "lr": 0.05},
        "eval": {"n": 12},
        "scorers": {"sci_which": "loglik_choice"},
        "usable_threshold": 0.0,
        **changes,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="session")
def mini_spec(mini_zoo):
    """write_mini_spec on the mini zoo: mini_spec(folder, **changes) -> the study's path."""
    return lambda folder, **changes: write_mini_spec(mini_zoo, folder, **changes)


@pytest.fixture(scope="session")
def mini_study(mini_zoo, tmp_path_factory) -> Path:
    """mean + Top-K (K 2, 3), 2 seeds."""
    return write_mini_spec(mini_zoo, tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def full_run(mini_study, tmp_path_factory) -> Path:
    """The mini study run once, uninterrupted, locally with one thread."""
    out = tmp_path_factory.mktemp("runs") / "full"
    run_study(load_study(mini_study), out, threads=1, progress=False, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def behaviour_spec(mini_zoo, tmp_path_factory) -> Path:
    """Every behaviour method and both controls, one seed."""
    return write_mini_spec(
        mini_zoo,
        tmp_path_factory.mktemp("behaviour-study"),
        name="mini-behaviour",
        methods={
            "mean": {},
            "global_ridge": {},
            "align": {"texts": 128},
            "spanfit": {"prompts": 16, "steps": 2, "max_new_tokens": 6},
            "distill": {"init": ["zero", "global_ridge"], "prompts": 16, "steps": 2, "max_new_tokens": 6},
        },
        seeds=[0],
        controls={"shuffled": True, "random": "global_ridge"},
    )
