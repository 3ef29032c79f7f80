"""User tasks from JSONL files or from a saved Hugging Face DatasetDict.

    task = load_jsonl_task("data/train.jsonl", "data/eval.jsonl", name="my_task")
    task = load_datasets_task("data/my_task")   # save_to_disk folder: "train" + "eval" (or "test")
    warn_if_small(task, task.available("eval"))

One record per line (or row): `prompt`, `answer`, `scorer` are required; `choices` (a list; the
answer is then a letter A, B, ...) for the choice scorers; `tests` (asserts) and `entry_point` for
code_exec; `id` is optional. Other fields land in `Item.meta`. A task uses one scorer. Loading fails
with a one-line TaskError that names the file and line (or split and row) of the first problem,
and when an eval prompt repeats a train prompt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from loraport.errors import TaskError, closest
from loraport.tasks.base import (
    CHOICE_SCORERS,
    KNOWN_SCORERS,
    LETTERS,
    Split,
    Task,
    check_request,
    normalize_prompt,
    rng_for,
)
from loraport.tasks.item import Item

FIELDS = ("id", "prompt", "answer", "scorer", "choices", "tests", "entry_point")
REQUIRED = ("prompt", "answer", "scorer")
ALTERNATES = {
    "choice_letter": ("loglik_choice",),
    "loglik_choice": ("choice_letter",),
    "numeric_flexible": ("numeric_strict",),
    "numeric_strict": ("numeric_flexible",),
}
DOMAIN_OF = {"numeric_strict": "math", "numeric_flexible": "math", "code_exec": "code"}
DOMAIN_OF |= {"choice_letter": "science", "loglik_choice": "science"}

Record = tuple[str, object]  # (where, for messages: "file, line 3"; the parsed record)


@dataclass(frozen=True, kw_only=True)
class FileTask(Task):
    """A task whose items were read from disk. `items(split, n, seed)` returns min(n, available)
    items in an order shuffled by seed."""

    train_items: tuple[Item, ...] = field(repr=False)
    eval_items: tuple[Item, ...] = field(repr=False)
    source: str = ""

    def _pool(self, split: Split) -> tuple[Item, ...]:
        return self.train_items if split == "train" else self.eval_items

    def available(self, split: Split) -> int:
        check_request(self.name, split, 0)
        return len(self._pool(split))

    def items(self, split: Split, n: int, seed: int = 0) -> list[Item]:
        check_request(self.name, split, n)
        pool = self._pool(split)
        order = rng_for("items", self.name, split, seed).permutation(len(pool))
        return [pool[int(i)] for i in order[:n]]


def _text(rec: dict, key: str, where: str, numbers: bool = False) -> str:
    value = rec[key]
    if numbers and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise TaskError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    return value


def _item(rec: object, where: str, task: str, split: str, index: int, scorers: frozenset[str]) -> Item:
    if not isinstance(rec, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    rec = {k: v for k, v in rec.items() if v is not None}
    for key in REQUIRED:
        if key not in rec:
            raise TaskError(f"{where}: missing field {key!r}")
    prompt, answer = _text(rec, "prompt", where), _text(rec, "answer", where, numbers=True)
    scorer = _text(rec, "scorer", where)
    if scorer not in scorers:
        valid = ", ".join(sorted(scorers))
        raise TaskError(f"{where}: unknown scorer {scorer!r}{closest(scorer, scorers)}; valid: {valid}")
    choices = rec.get("choices", [])
    if not isinstance(choices, list | tuple) or not all(isinstance(c, str) for c in choices):
        raise TaskError(f"{where}: field 'choices' must be a list of strings")
    if scorer in CHOICE_SCORERS:
        if len(choices) < 2:
            raise TaskError(f"{where}: scorer {scorer!r} needs 'choices', a list of at least 2 options")
        if len(choices) > len(LETTERS):
            raise TaskError(f"{where}: at most {len(LETTERS)} choices, got {len(choices)}")
        letters = LETTERS[: len(choices)]
        if answer.strip().upper() not in letters or len(answer.strip()) != 1:
            raise TaskError(f"{where}: answer {answer!r} is not one of the choice letters {letters}")
        answer = answer.strip().upper()
    tests = rec.get("tests", "")
    if isinstance(tests, list) and all(isinstance(t, str) for t in tests):
        tests = "\n".join(tests)
    if not isinstance(tests, str):
        raise TaskError(f"{where}: field 'tests' must be a string (or a list of strings)")
    if scorer == "code_exec" and not tests.strip():
        raise TaskError(f"{where}: scorer 'code_exec' needs 'tests' (asserts to run)")
    entry_point = _text(rec, "entry_point", where) if "entry_point" in rec else ""
    item_id = str(rec["id"]) if "id" in rec else f"{task}/{split}/{index}"
    meta = {k: v for k, v in rec.items() if k not in FIELDS}
    meta |= {"task": task, "split": split, "source": where}
    return Item(
        id=item_id,
        prompt=prompt,
        answer=answer,
        scorer=scorer,
        choices=tuple(choices),
        tests=tests,
        entry_point=entry_point,
        meta=meta,
    )


def _items(records: list[Record], task: str, split: str, scorers: frozenset[str]) -> list[Item]:
    items: list[Item] = []
    first_of: dict[str, str] = {}
    for index, (where, rec) in enumerate(records):
        item = _item(rec, where, task, split, index, scorers)
        if item.id in first_of:
            raise TaskError(f"{where}: duplicate id {item.id!r} (first at {first_of[item.id]})")
        first_of[item.id] = where
        if items and item.scorer != items[0].scorer:
            raise TaskError(
                f"{where}: scorer {item.scorer!r} differs from {items[0].scorer!r} used before; "
                "a task uses one scorer"
            )
        items.append(item)
    return items


def build_file_task(
    name: str,
    train: list[Record],
    evals: list[Record],
    *,
    source: str,
    role: str = "heldout",
    domain: str | None = None,
    description: str | None = None,
    scorers: Iterable[str] = KNOWN_SCORERS,
) -> FileTask:
    """Validate parsed records and make a FileTask; shared by the JSONL and datasets loaders."""
    valid = frozenset(scorers)
    train_items = _items(train, name, "train", valid)
    eval_items = _items(evals, name, "eval", valid)
    scorer = train_items[0].scorer
    if eval_items[0].scorer != scorer:
        raise TaskError(
            f"{eval_items[0].meta['source']}: scorer {eval_items[0].scorer!r} differs from the "
            f"train scorer {scorer!r}; a task uses one scorer"
        )
    seen = {normalize_prompt(it.prompt) for it in train_items}
    for it in eval_items:
        if normalize_prompt(it.prompt) in seen:
            raise TaskError(
                f"task {name!r}: eval item at {it.meta['source']} repeats a train prompt: {it.prompt!r}"
            )
    return FileTask(
        name=name,
        domain=domain or DOMAIN_OF.get(scorer, "other"),
        role=role,
        description=description or f"user task from {source}",
        scorers=(scorer, *(s for s in ALTERNATES.get(scorer, ()) if s in valid)),
        train_items=tuple(train_items),
        eval_items=tuple(eval_items),
        source=source,
    )


def load_eval_jsonl(path: str | Path, name: str | None = None) -> FileTask:
    """A labelled JSONL (the same record format) used only to evaluate: every line an eval item,
    no train split. For checking a port on your own data (`loraport port --eval`)."""
    path = Path(path)
    items = _items(_read_jsonl(path), name or _default_name(path), "eval", frozenset(KNOWN_SCORERS))
    scorer = items[0].scorer
    return FileTask(
        name=name or _default_name(path),
        domain=DOMAIN_OF.get(scorer, "other"),
        role="heldout",
        description=f"labelled items from {path}",
        scorers=(scorer, *(s for s in ALTERNATES.get(scorer, ()) if s in KNOWN_SCORERS)),
        train_items=(),
        eval_items=tuple(items),
        source=str(path),
    )


def _read_jsonl(path: Path) -> list[Record]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise TaskError(f"{path}: cannot read ({e})") from None
    records: list[Record] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}, line {lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}, line {lineno}: malformed JSON ({e.msg}, column {e.colno})") from None
    if not records:
        raise TaskError(f"{path}: no items")
    return records


def _default_name(path: Path) -> str:
    stem = path.name.split(".")[0]
    for suffix in ("_train", "-train"):
        stem = stem.removesuffix(suffix)
    if stem.lower() in ("", "train", "data"):
        stem = path.resolve().parent.name or "user_task"
    return stem


def load_jsonl_task(
    train_path: str | Path,
    eval_path: str | Path,
    name: str | None = None,
    *,
    role: str = "heldout",
    domain: str | None = None,
    description: str | None = None,
    scorers: Iterable[str] = KNOWN_SCORERS,
) -> FileTask:
    """A task from two JSONL files. `name` defaults to the train file's stem without "_train"
    (or its folder's name for "train.jsonl"); `domain` defaults from the scorer; `scorers` is the
    set of valid scorer names."""
    train_path, eval_path = Path(train_path), Path(eval_path)
    return build_file_task(
        name or _default_name(train_path),
        _read_jsonl(train_path),
        _read_jsonl(eval_path),
        source=str(train_path.parent),
        role=role,
        domain=domain,
        description=description,
        scorers=scorers,
    )


def load_datasets_task(
    folder: str | Path,
    name: str | None = None,
    *,
    role: str = "heldout",
    domain: str | None = None,
    description: str | None = None,
    scorers: Iterable[str] = KNOWN_SCORERS,
) -> FileTask:
    """A task from a `datasets.DatasetDict` saved with `save_to_disk`, with a "train" split and an
    "eval" (or else "test") split whose columns are the JSONL fields."""
    try:
        import datasets  # heavy; only needed here
    except ImportError:
        raise TaskError(
            "load_datasets_task needs the 'datasets' package: pip install 'loraport[datasets]'"
        ) from None
    folder = Path(folder)
    if not folder.exists():
        raise TaskError(f"{folder}: folder not found")
    try:
        dd = datasets.load_from_disk(str(folder))
    except Exception as e:  # datasets raises several types for a folder it cannot read
        first = (str(e).splitlines() or [""])[0]
        raise TaskError(
            f"{folder}: not a dataset saved with save_to_disk ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(dd, datasets.DatasetDict):
        raise TaskError(f"{folder}: holds one Dataset; save a DatasetDict with 'train' and 'eval' splits")
    eval_split = next((s for s in ("eval", "test") if s in dd), None)
    if "train" not in dd or eval_split is None:
        raise TaskError(f"{folder}: needs splits 'train' and 'eval' (or 'test'); found {sorted(dd)}")

    def records(split: str) -> list[Record]:
        rows = [(f"{folder} [{split}] row {i}", row) for i, row in enumerate(dd[split], 1)]
        if not rows:
            raise TaskError(f"{folder} [{split}]: no items")
        return rows

    return build_file_task(
        name or folder.resolve().name,
        records("train"),
        records(eval_split),
        source=str(folder),
        role=role,
        domain=domain,
        description=description,
        scorers=scorers,
    )


def resolve_task(spec: str | Path) -> Task:
    """A task from a CLI-style spec: a registered name, a folder holding train.jsonl and
    eval.jsonl, or a `datasets` folder saved with `save_to_disk` (it has dataset_dict.json)."""
    from loraport.tasks.base import TASKS

    text = str(spec)
    if text in TASKS:
        return TASKS.get(text)
    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "train.jsonl").is_file() and (path / "eval.jsonl").is_file():
            return load_jsonl_task(path / "train.jsonl", path / "eval.jsonl")
        if (path / "dataset_dict.json").is_file():
            return load_datasets_task(path)
        raise TaskError(
            f"{path}: a task folder needs train.jsonl + eval.jsonl, or a saved datasets DatasetDict"
        )
    if "/" in text or text.endswith(".jsonl"):
        raise TaskError(f"{path}: no such task folder")
    from loraport.tasks.base import get_task

    return get_task(text)  # a few-shot variant, or the registry's error naming the closest task
