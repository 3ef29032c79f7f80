"""A model judge: a base model asked, item by item, whether an output answers the task correctly.

    judge = Judge.load(JudgeConfig(model="smollm2-135m-instruct"))
    verdicts = judge.verdicts(items, predictions)      # Verdicts; detail = the judge's raw reply
    judged = judge.judge_result(result, items)          # result + one record per item, scorer
                                                        # "judge:smollm2-135m-instruct"
    agreement(Scores.of(judged, "numeric_strict"), Scores.of(judged, judge.name))  # scorers.agreement

The judge sees `JudgeConfig.template` filled with the item's prompt, its reference answer and the
output, as one user turn under its own chat format (`loraport.models.chat`: an instruct model's
template; raw text for a model without one), and answers by greedy decoding (`evaluate.generate`),
at most `max_new_tokens` tokens. Its reply is read by `parse_verdict`: the first word, ignoring
case, surrounding markdown and punctuation and a leading "Verdict:" label, must be "yes"
(correct) or "no" (wrong). Anything else is a judge parse failure: the verdict is `invalid`
(counted apart, and not correct), like an extractor that finds no answer. Every verdict keeps the
raw reply in `detail`, and the record the judged output in `prediction`.

The template must name the fields {prompt}, {reference} and {output}, and no others (a literal
brace is written twice); a template that does not, or a judge model that cannot be resolved, is a
one-line error raised before any model is loaded or any item judged.

The judge is as good as its model: a 135M instruct model judges badly, and the agreement numbers
(scorers.agreement) say how badly. The reference for a multiple-choice item is its answer text
with the letter ("narts (C)"), for other items what training teaches (`Item.completion()`).
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loraport.errors import TaskError
from loraport.evaluate.generate import generate
from loraport.evaluate.run import EvalResult, Record
from loraport.models.chat import chat_format
from loraport.scorers import Verdict
from loraport.tasks import Item, Task, resolve_task
from loraport.tasks.base import LETTERS

#: The fields a judge template must name, and the only ones it may.
JUDGE_FIELDS = ("prompt", "reference", "output")

#: The fixed judge prompt. It ends on "Verdict:" so that a model without a chat template (raw
#: text) continues with its verdict too; an instruct model sees it as the user turn.
DEFAULT_JUDGE_TEMPLATE = (
    "You are grading an answer to a task. Decide whether the answer reaches the same final "
    "result as the reference answer. Ignore wording and formatting; judge only correctness.\n\n"
    "Task:\n{prompt}\n\n"
    "Reference answer:\n{reference}\n\n"
    "Answer to grade:\n{output}\n\n"
    "Is the answer to grade correct? Reply with one word, yes or no.\n"
    "Verdict:"
)


def check_template(template: str) -> None:
    """A one-line TaskError unless `template` names each of JUDGE_FIELDS and nothing else."""
    try:
        named = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise TaskError(f"judge template: {exc} (write a literal brace as {{{{ or }}}})") from None
    missing = [f for f in JUDGE_FIELDS if f not in named]
    if missing:
        raise TaskError(f"judge template lacks the field(s) {', '.join('{' + f + '}' for f in missing)}")
    extra = sorted({f for f in named if f not in JUDGE_FIELDS})
    if extra:
        fields = ", ".join("{" + f + "}" for f in JUDGE_FIELDS)
        raise TaskError(f"judge template names unknown field {{{extra[0]}}} (allowed: {fields})")


@dataclass(frozen=True)
class JudgeConfig:
    """Which model judges, with which prompt, and how long its reply may be."""

    model: str = "smollm2-135m-instruct"
    template: str = DEFAULT_JUDGE_TEMPLATE
    max_new_tokens: int = 16  # "yes"/"no" plus a few words of the raw reply for the record
    batch: int = 16
    name: str | None = None  # the scorer name of its verdicts; None: "judge:<model name>"

    def __post_init__(self) -> None:
        check_template(self.template)
        if self.max_new_tokens < 1:
            raise TaskError(f"judge max_new_tokens: {self.max_new_tokens} (need ≥ 1)")

    @property
    def scorer(self) -> str:
        return self.name or f"judge:{Path(os.fspath(self.model)).name}"

    @property
    def template_digest(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:12]


_LEAD = re.compile(r"^[\s*_`\"'“‘(\[>#-]*(?:verdict\s*[:\-]\s*[\s*_`\"'“‘(\[]*)?", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z]+")


def parse_verdict(text: str) -> bool | None:
    """True for a reply whose first word is "yes", False for "no", None (a parse failure) otherwise.
    Case, markdown, quotes, punctuation and a leading "Verdict:" are ignored: "**Yes.**",
    " no, because…", "Verdict: YES" parse; "The answer is correct", "yesno", "" do not."""
    rest = _LEAD.sub("", text, count=1)
    word = _WORD.match(rest)
    if word is None or (word.end() < len(rest) and rest[word.end()].isalnum()):
        return None
    return {"yes": True, "no": False}.get(word.group().lower())


def reference_text(item: Item) -> str:
    """The reference answer the judge is shown."""
    letter = item.answer.strip().upper()
    if item.choices and letter in LETTERS[: len(item.choices)]:
        return f"{item.choices[LETTERS.index(letter)]} ({letter})"
    return item.completion().strip()


def eval_items(result: EvalResult, task: str | Task) -> list[Item]:
    """The eval items `evaluate` scored in `result`, drawn again from `task`."""
    prov = result.provenance
    if "n" not in prov or "eval_seed" not in prov:
        raise TaskError(f"judge: result of {result.task!r} does not say which items it drew; pass the items")
    task = resolve_task(task) if isinstance(task, str) else task
    return task.items("eval", prov["n"], seed=prov["eval_seed"])


class Judge:
    """A loaded judge model. Build one with `Judge.load`."""

    def __init__(self, config: JudgeConfig, model: Any, tokenizer: Any, provenance: dict[str, Any]) -> None:
        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.provenance = provenance

    @classmethod
    def load(cls, config: JudgeConfig | None = None, *, device: str | None = None) -> Judge:
        """Check the config and the judge model's name, then load the model (with its chat format)."""
        from loraport.models import load_model, resolve_model

        config = config or JudgeConfig()
        ref = resolve_model(config.model)  # an unknown name: one-line ModelLoadError, nothing loaded
        model, tokenizer, ref = load_model(ref, device=device)
        if tokenizer is None:
            raise TaskError(f"judge model {config.model}: has no tokenizer, so it cannot read text")
        provenance = {
            "model": ref.provenance().get("fingerprint"),
            "spec": config.model,
            "template": config.template_digest,
            "max_new_tokens": config.max_new_tokens,
            "chat": chat_format(tokenizer).provenance(),
        }
        return cls(config, model, tokenizer, provenance)

    @property
    def name(self) -> str:
        return self.config.scorer

    def prompts(self, items: Sequence[Item], predictions: Sequence[str]) -> list[str]:
        """The judge's prompt for each (item, output) pair (before its chat format wraps it)."""
        if len(items) != len(predictions):
            raise TaskError(f"judge: {len(items)} items but {len(predictions)} outputs")
        return [
            self.config.template.format(
                prompt=it.prompt.strip(), reference=reference_text(it), output=p.strip()
            )
            for it, p in zip(items, predictions, strict=True)
        ]

    def verdicts(self, items: Sequence[Item], predictions: Sequence[str], progress=None) -> list[Verdict]:
        """One Verdict per output: correct on "yes", wrong on "no", invalid on a parse failure;
        `extracted` is "yes"/"no" (None when invalid), `detail` the judge's raw reply."""
        replies = generate(
            self.model,
            self.tokenizer,
            self.prompts(items, predictions),
            max_new_tokens=self.config.max_new_tokens,
            batch=self.config.batch,
            on_batch=progress,
        )
        out = []
        for reply in replies:
            said = parse_verdict(reply)
            if said is None:
                out.append(Verdict(False, None, "invalid", reply))
            else:
                out.append(Verdict(said, "yes" if said else "no", "ok", reply))
        return out

    def judge_result(
        self,
        result: EvalResult,
        items: Sequence[Item] | str | Task,
        scorer: str | None = None,
        progress=None,
    ) -> EvalResult:
        """`result` with the judge's verdicts on the outputs `scorer` scored (default: the first
        scorer that reads generated text) added as records of scorer `self.name`. `items` must hold
        every judged item (by id); a task (or its name) gives the eval items `evaluate` drew for
        `result` (its provenance's n and eval_seed). Provenance gains `judges[name]`: model fingerprint, template
        digest, chat format, and the number of parse failures."""
        scorer = scorer or next((s for s in result.scorers() if s != "loglik_choice"), None)
        if scorer is None:
            raise TaskError(f"judge: {result.task!r} has no generated outputs to judge")
        if scorer == self.name or scorer not in result.scorers():
            have = ", ".join(s for s in result.scorers() if s != self.name) or "none"
            raise TaskError(f"judge: no outputs of scorer {scorer!r} to judge (scored: {have})")
        rows = [r for r in result.records if r.scorer == scorer]
        if isinstance(items, str | Task):
            items = eval_items(result, items)
        by_id = {it.id: it for it in items}
        lost = [r.id for r in rows if r.id not in by_id]
        if lost:
            raise TaskError(f"judge: {len(lost)} judged item(s) not among the items given (e.g. {lost[0]!r})")
        judged = [by_id[r.id] for r in rows]
        verdicts = self.verdicts(judged, [r.prediction for r in rows], progress=progress)
        new = [
            Record(
                r.id, r.task, self.name, v.correct, v.status, v.extracted, r.prediction, r.answer, v.detail
            )
            for r, v in zip(rows, verdicts, strict=True)
        ]
        kept = [r for r in result.records if r.scorer != self.name]
        judges = {**result.provenance.get("judges", {})}
        judges[self.name] = {
            **self.provenance,
            "judged": scorer,
            "parse_failures": sum(v.is_invalid for v in verdicts),
        }
        return EvalResult(result.task, kept + new, {**result.provenance, "judges": judges})
