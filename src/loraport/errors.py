"""One exception hierarchy. User mistakes raise a LoraportError whose message names the
file, field or value; the CLI prints it as one line and exits non-zero."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LoraportError(Exception):
    """Base class for every error loraport raises on purpose."""


class AdapterError(LoraportError):
    """An adapter folder is missing, malformed, or does not fit its base."""


class ArchError(LoraportError):
    """Unknown model family or a config that the family file cannot read."""


class AnchorError(LoraportError):
    """An anchor list is malformed (duplicates, mismatched tasks, too few pairs)."""


class MethodError(LoraportError):
    """Unknown port method or bad method option."""


class ModelLoadError(LoraportError):
    """A base model could not be found or loaded."""


class OutputExistsError(LoraportError):
    """The output path exists and --force was not given."""


class TaskError(LoraportError):
    """A task definition or data file is malformed."""


class SandboxError(LoraportError):
    """The sandbox could not be set up."""


def closest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""
