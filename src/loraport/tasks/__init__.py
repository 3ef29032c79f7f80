"""Task definitions: procedural generators (math, code, science), user tasks from files, the
knowledge base and the pretraining corpus. No model code.

    from loraport.tasks import get_task, list_tasks
    list_tasks(role="heldout")                     # ['code_cond_arith', ...]
    items = get_task("sci_color").items("eval", 300, seed=0)

    from loraport.tasks import load_jsonl_task, pretraining_corpus
"""

from loraport.tasks import code, math, procedure, science  # noqa: F401  (importing registers the tasks)
from loraport.tasks.base import (
    CHOICE_SCORERS,
    KNOWN_SCORERS,
    TASKS,
    Draft,
    GeneratedTask,
    Task,
    check_disjoint,
    get_task,
    list_tasks,
    stable_hash,
    warn_if_small,
)
from loraport.tasks.corpus import pretraining_corpus
from loraport.tasks.files import FileTask, load_datasets_task, load_eval_jsonl, load_jsonl_task, resolve_task
from loraport.tasks.item import Item
from loraport.tasks.kb import KB, KnowledgeBase, kb_sentences

__all__ = [
    "CHOICE_SCORERS",
    "KB",
    "KNOWN_SCORERS",
    "TASKS",
    "Draft",
    "FileTask",
    "GeneratedTask",
    "Item",
    "KnowledgeBase",
    "Task",
    "check_disjoint",
    "get_task",
    "kb_sentences",
    "list_tasks",
    "load_datasets_task",
    "load_eval_jsonl",
    "load_jsonl_task",
    "pretraining_corpus",
    "resolve_task",
    "stable_hash",
    "warn_if_small",
]
