"""The teacher: the source base with the source adapter merged (X + X adapter), answering
unlabeled prompts. Its answers are text, so a target with another tokenizer can learn from them
(sequence-level distillation; logit-level distillation breaks when tokenizers split digits
differently, see notes/porting.md).

    answers = teach("tiny-qwen2-x", "adapters/x-code_paren", task_prompts("code_paren", 512))
    answers.save("runs/teacher.jsonl"); Answers.load("runs/teacher.jsonl")
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loraport.errors import MethodError
from loraport.io import atomic_file
from loraport.tasks import Item


@dataclass
class Answers:
    """Greedy teacher answers, one per prompt, with what producing them cost."""

    prompts: list[str]
    answers: list[str]
    generated_tokens: int
    seconds: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def items(self, name: str = "teacher") -> list[Item]:
        """Training items whose completion is the teacher's answer. Empty answers are dropped
        (there is nothing to imitate)."""
        return [
            Item(id=f"{name}/{i}", prompt=p, answer=a, scorer="exact")
            for i, (p, a) in enumerate(zip(self.prompts, self.answers, strict=True))
            if a.strip()
        ]

    def save(self, path: str | Path) -> Path:
        head = {
            "kind": "teacher_answers",
            "generated_tokens": self.generated_tokens,
            "seconds": self.seconds,
            "provenance": self.provenance,
        }
        with atomic_file(path) as fh:
            fh.write(json.dumps(head, sort_keys=True) + "\n")
            for p, a in zip(self.prompts, self.answers, strict=True):
                fh.write(json.dumps({"prompt": p, "answer": a}) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Answers:
        lines = Path(path).read_text().splitlines()
        try:
            head = json.loads(lines[0])
            rows = [json.loads(x) for x in lines[1:]]
        except (IndexError, json.JSONDecodeError):
            raise MethodError(f"{path}: not a teacher-answers file") from None
        if head.get("kind") != "teacher_answers":
            raise MethodError(f"{path}: not a teacher-answers file (first line has no kind)")
        return cls(
            [r["prompt"] for r in rows],
            [r["answer"] for r in rows],
            int(head["generated_tokens"]),
            float(head["seconds"]),
            head.get("provenance", {}),
        )


def context_length(model: Any) -> int:
    """How many tokens (prompt + answer) a teacher item may have when a target model learns from it:
    the model's context window. Teacher answers are already bounded by their generation budget, and
    a few-shot prompt plus a reasoned answer outgrows a training recipe's usual 256 tokens on a large
    vocabulary (Gemma's), so no fixed cap is imposed; an item beyond the context is an error."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(getattr(config, "max_position_embeddings", None) or 2048)


def encodable_items(tokenizer, answers: Answers) -> list:
    """Teacher items the target's tokenizer represents exactly (a byte-level teacher may write
    text another tokenizer cannot round-trip); empty answers are dropped too."""
    items = answers.items()
    if not items:
        return []
    texts = [it.prompt + it.answer for it in items]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    keep = []
    for it, text, seq in zip(items, texts, ids, strict=True):
        back = tokenizer.decode(seq, clean_up_tokenization_spaces=False)
        if (unk is None or unk not in seq) and " ".join(back.split()) == " ".join(text.split()):
            keep.append(it)
    return keep


def teach(
    source: str,
    adapter: str | Path,
    prompts: list[str],
    *,
    max_new_tokens: int = 64,
    batch: int = 64,
    device: str | None = None,
    progress: bool = False,
) -> Answers:
    """X + X adapter answers `prompts` greedily (one line each, as in evaluation), on `device`
    (None: the current one)."""
    from loraport.evaluate.generate import generate
    from loraport.evaluate.merge import merge_adapter
    from loraport.models import load_model
    from loraport.models.chat import chat_format

    if not prompts:
        raise MethodError("the teacher needs at least one prompt")
    start = time.perf_counter()
    model, tokenizer, ref = load_model(source, device=device)
    if tokenizer is None:
        raise MethodError(f"source base {source}: has no tokenizer, so it cannot answer prompts")
    adapter_prov = merge_adapter(model, adapter)
    from loraport.train.loop import progress_bar

    with progress_bar(progress) as bar:
        job = bar.add_task("teacher answers", total=len(prompts), info="")
        answers = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch=batch,
            on_batch=lambda k: bar.advance(job, k),
        )
    tokens = sum(len(ids) for ids in tokenizer(answers, add_special_tokens=False)["input_ids"])
    return Answers(
        list(prompts),
        answers,
        tokens,
        round(time.perf_counter() - start, 3),
        {
            "source": ref.provenance(),
            "adapter": adapter_prov,
            "max_new_tokens": max_new_tokens,
            "chat": chat_format(tokenizer).provenance(),
        },
    )
