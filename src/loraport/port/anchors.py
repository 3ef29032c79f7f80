"""ANCHORS.yaml: the two bases and the anchor pairs (the same task's adapter trained on each base).

    source_base: Qwen/Qwen2.5-3B-Instruct        # id, checkpoint folder or .gguf file
    target_base: meta-llama/Llama-3.2-3B-Instruct
    pairs:
      - {task: gsm8k, source: anchors/qwen/gsm8k, target: anchors/llama/gsm8k}
      - ...

Relative adapter paths are resolved against the YAML file's folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from loraport.errors import AnchorError, closest
from loraport.io import read_yaml_mapping


class AnchorPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: str
    source: Path
    target: Path


class AnchorsSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source_base: str
    target_base: str
    pairs: list[AnchorPair]

    @field_validator("pairs")
    @classmethod
    def _unique(cls, pairs: list[AnchorPair]) -> list[AnchorPair]:
        seen: set[str] = set()
        for p in pairs:
            if p.task in seen:
                raise ValueError(f"duplicate task {p.task!r}")
            seen.add(p.task)
        return pairs

    @property
    def tasks(self) -> list[str]:
        return [p.task for p in self.pairs]


def load_anchors(path: str | Path) -> AnchorsSpec:
    path = Path(path)
    raw, _ = read_yaml_mapping(path, AnchorError, "anchors")
    try:
        spec = AnchorsSpec.model_validate(raw)
    except ValidationError as e:
        errs = e.errors()  # an unknown key explains a "missing field" error next to it: report it first
        err = next((x for x in errs if x["type"] == "extra_forbidden"), errs[0])
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][-1])
            valid = AnchorPair.model_fields if len(err["loc"]) > 1 else AnchorsSpec.model_fields
            msg = f"unknown field{closest(field, valid)}"
        raise AnchorError(f"{path}: field {loc}: {msg}") from None
    base = path.parent
    for p in spec.pairs:
        p.source = (base / p.source).resolve() if not p.source.is_absolute() else p.source
        p.target = (base / p.target).resolve() if not p.target.is_absolute() else p.target
    if len(spec.pairs) < 2:
        raise AnchorError(f"{path}: field pairs has {len(spec.pairs)} anchor pair(s); at least 2 are needed")
    return spec


def check_pair_tasks(spec: AnchorsSpec, adapters_src: list, adapters_tgt: list) -> None:
    """A pair whose adapters record (in loraport provenance) a task other than the pair's is mismatched."""
    for pair, xs, ys in zip(spec.pairs, adapters_src, adapters_tgt, strict=True):
        for side, ad in (("source", xs), ("target", ys)):
            recorded = ad.provenance.get("task")
            if recorded is not None and recorded != pair.task:
                raise AnchorError(
                    f"{ad.path}: {side} adapter of pair {pair.task!r} was trained on task {recorded!r}"
                )
