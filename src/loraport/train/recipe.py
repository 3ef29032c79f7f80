"""The LoRA training recipe: the reference study's knobs, validated."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from loraport.train.regularizers import REGULARIZERS, RegularizerError, get_regularizer

#: Knobs added after studies were first cached: left out of a dump while they hold their default, so
#: recipes that do not use them keep their cache keys (and digests) from before they existed.
_LATE_DEFAULTS: dict[str, Any] = {
    "answer_logits": None,
    "bucket": False,
    "regularizer": None,
    "strength": None,
}


class Recipe(BaseModel):
    """How one LoRA adapter is trained. The defaults are the embedded zoo's study recipe: measured,
    they take tiny-llama-y's oracles from 0 to ≥ 10 points on every held-out task, in 20–30 s each
    (benchmarks/zoo_usable.py). On real checkpoints lower `lr` (e.g. 2e-4). `target_modules=None`
    means every projection the base's architecture family lists (q, k, v, o, gate, up, down for
    Llama-like models).

    `examples` training items are drawn from the task's train split (seed `seed`) and shown
    `epochs` times in a seeded order, `batch` at a time; the loss covers the answer tokens only.
    `max_length` caps prompt + answer tokens (longer examples are an error, not silently cut).

    Speed knobs for real checkpoints (same loss, less compute):
    `answer_logits` computes the output layer only at answer positions (None: where the vocabulary
    has ≥ 32,768 tokens; Gemma-3's 262k-token head otherwise dominates a step); `bucket` groups
    examples of similar length into batches (seeded), so padding costs less.

    `regularizer` names one of `loraport.train.regularizers.REGULARIZERS` (l2_delta, spectral,
    nuclear, orthogonal_a, hidden_change, entropy, fake_quant, weight_clip; the formulas are there)
    and `strength` its λ (left out: the regularizer's default; each has its own valid range).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int = Field(16, ge=1, le=1024)
    alpha: float = Field(32.0, gt=0)
    target_modules: tuple[str, ...] | None = None
    epochs: int = Field(4, ge=1, le=1000)
    examples: int = Field(2000, ge=1)
    batch: int = Field(32, ge=1)
    lr: float = Field(5e-3, gt=0, le=1.0)
    warmup: float = Field(0.05, ge=0, lt=1, description="share of steps with linear warm-up")
    weight_decay: float = Field(0.0, ge=0)
    clip: float = Field(1.0, ge=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    max_length: int = Field(256, ge=8)
    seed: int = 0
    answer_logits: bool | None = None
    bucket: bool = False
    regularizer: str | None = None
    strength: float | None = None

    @model_serializer(mode="wrap")
    def _drop_late_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for key, default in _LATE_DEFAULTS.items():
            if key in data and data[key] == default:
                del data[key]
        return data

    @model_validator(mode="after")
    def _modules_nonempty(self) -> Recipe:
        if self.target_modules is not None and not self.target_modules:
            raise ValueError("target_modules is empty; leave it out for every projection")
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_strength(cls, data: Any) -> Any:
        # a named regularizer without a strength gets its default, written out, so that records say
        # which λ trained them and both spellings share one digest
        if isinstance(data, dict) and data.get("regularizer") and data.get("strength") is None:
            name = data["regularizer"]
            if isinstance(name, str) and name in REGULARIZERS:
                data = {**data, "strength": REGULARIZERS.get(name).default}
        return data

    @field_validator("regularizer")
    @classmethod
    def _known_regularizer(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                get_regularizer(name)
            except RegularizerError as e:  # a ValueError, so a study file's error names its line
                raise ValueError(str(e)) from None
        return name

    @model_validator(mode="after")
    def _strength_in_range(self) -> Recipe:
        if self.regularizer is None:
            if self.strength is not None:
                raise ValueError(f"strength {self.strength:g} is set but no regularizer is named")
            return self
        if self.strength is not None:
            try:
                get_regularizer(self.regularizer).check_strength(self.regularizer, self.strength)
            except RegularizerError as e:
                raise ValueError(str(e)) from None
        return self

    def steps_per_epoch(self) -> int:
        return -(-self.examples // self.batch)

    def digest(self) -> str:
        """A stable hash of every knob (for content-addressed caches)."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
