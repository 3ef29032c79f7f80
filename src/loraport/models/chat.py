"""Chat templates: prompts formatted the way an instruct model is run, the same in training, in the
teacher's generation and in evaluation.

    with use_chat_template("auto"):             # the default; "none" feeds raw prompts
        model, tok, ref = load_model("smollm2-135m-instruct")
    fmt = chat_format(tok)                       # attached to the tokenizer by load_model
    fmt.render("What is 2 + 3?")                 # '<|im_start|>system\\n…<|im_start|>assistant\\n'
    fmt.stop_ids                                 # EOS and the template's end-of-turn token(s)

`auto` takes the tokenizer's own template (from tokenizer_config.json, or the GGUF metadata that
transformers turns into it) and feeds raw prompts to a checkpoint without one (a pretrained base
model such as Gemma-3-270M's GGUF, or the embedded zoo). `family` also gives a checkpoint without a
template its architecture family's documented turn format where the family file declares one (for
instruct checkpoints whose files lost their template). `none` always feeds raw prompts. Measured on
Gemma-3-270M (pretrained, no template): under Gemma's turn format its cross-entropy on math_mul_add
answers is 12.4 nats against 4.1 with raw prompts, so `auto` does not impose a turn format on a
model that was not trained with one. Each model resolves its own format, so a source
X and a target Y that tokenize differently each see their own turn markers.

A trained answer ends with the template's end-of-turn token (what the template writes after an
assistant message), not with EOS, so that generation under the template stops where training taught
it to. The resolved format's `digest` enters the bench's cache keys.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loraport.errors import ModelLoadError

__all__ = ["CHAT_MODES", "ChatFormat", "chat_format", "chat_mode", "resolve_chat", "use_chat_template"]

CHAT_MODES = ("auto", "family", "none")
_ATTR = "_loraport_chat_format"
_MODE: contextvars.ContextVar[str | None] = contextvars.ContextVar("loraport_chat_mode", default=None)
_PROBE_USER, _PROBE_ANSWER = "Q\u2400", "A\u2401"  # marker strings no template writes itself


@dataclass(frozen=True)
class ChatFormat:
    """How prompts are wrapped for one tokenizer. `template is None` means raw prompts."""

    template: str | None = None
    source: str = "none"  # "tokenizer", "family:<name>" or "none"
    answer_end: tuple[int, ...] = ()  # token ids that close an assistant turn (training target)
    stop_ids: tuple[int, ...] = ()  # token ids that end generation (EOS and end-of-turn)
    end_text: str = ""  # the text the template writes after an answer, e.g. "<end_of_turn>\n"
    _tokenizer: Any = None
    prefix: str = ""  # raw prompts: the BOS text, where the tokenizer puts BOS before every text

    @property
    def active(self) -> bool:
        return self.template is not None

    @property
    def digest(self) -> str:
        """'' for raw prompts; otherwise a short hash of the template and its end-of-turn ids."""
        if not self.active:
            return "" if not self.prefix else hashlib.sha256(self.prefix.encode()).hexdigest()[:12]
        text = f"{self.template}\x1f{self.answer_end}\x1f{self.stop_ids}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def render(self, prompt: str) -> str:
        """The text a model sees for a user turn `prompt`, up to where its answer starts."""
        if not self.active:
            return self.prefix + prompt
        return _render(self._tokenizer, self.template, [{"role": "user", "content": prompt}], True)

    def provenance(self) -> dict[str, Any]:
        return {"chat_template": self.source, "digest": self.digest, "stop_ids": list(self.stop_ids)}


def _render(tokenizer: Any, template: str, messages: list[dict[str, str]], gen: bool) -> str:
    try:
        text = tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=gen
        )
    except Exception as exc:  # jinja errors of every kind
        name = getattr(tokenizer, "name_or_path", "tokenizer")
        raise ModelLoadError(
            f"{name}: chat template failed to render ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if not isinstance(text, str):
        raise ModelLoadError(
            f"{getattr(tokenizer, 'name_or_path', 'tokenizer')}: chat template rendered no text"
        )
    return text


def _check_mode(mode: str) -> None:
    if mode not in CHAT_MODES:
        raise ModelLoadError(f"chat_template: {mode!r} is not one of {', '.join(CHAT_MODES)}")


def _family_template(config: Any) -> tuple[str | None, str]:
    if config is None:
        return None, ""
    from loraport.arch import families

    model_type = getattr(config, "model_type", None)
    for fam in families().values():
        if model_type in fam.model_types and fam.chat_template:
            return fam.chat_template, f"family:{fam.name}"
    return None, ""


def resolve_chat(
    tokenizer: Any, config: Any = None, mode: str = "auto", add_bos: bool | None = None
) -> ChatFormat:
    """The chat format `mode` gives this tokenizer (see the module docstring). `add_bos` is what the
    checkpoint itself says about BOS (a GGUF's `tokenizer.ggml.add_bos_token`; None: nothing); raw
    prompts start with BOS when it says so or when the tokenizer's own encoding does. Raises a
    one-line ModelLoadError when a template does not render or has no recognisable end of an answer."""
    _check_mode(mode)
    eos = tokenizer.eos_token_id
    raw = _raw(tokenizer, add_bos)
    if mode == "none":
        return raw
    template, source = getattr(tokenizer, "chat_template", None), "tokenizer"
    if isinstance(template, dict):  # several named templates: the default one
        template = template.get("default")
    if not template and mode == "family":
        template, source = _family_template(config)
    if not template:
        return raw
    user = [{"role": "user", "content": _PROBE_USER}]
    prompt = _render(tokenizer, template, user, True)
    full = _render(tokenizer, template, [*user, {"role": "assistant", "content": _PROBE_ANSWER}], False)
    name = getattr(tokenizer, "name_or_path", "tokenizer")
    if _PROBE_USER not in prompt or _PROBE_ANSWER not in full:
        raise ModelLoadError(f"{name}: chat template does not place the user message and the answer")
    end_text = full[full.index(_PROBE_ANSWER) + len(_PROBE_ANSWER) :]
    specials = set(tokenizer.all_special_ids) | {
        i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)
    }
    end_ids = tuple(i for i in tokenizer(end_text, add_special_tokens=False)["input_ids"] if i in specials)
    if not end_ids:
        if eos is None:
            raise ModelLoadError(
                f"{name}: chat template ends an answer with {end_text!r}, which holds no special token"
            )
        end_ids = (eos,)
    stops = tuple(dict.fromkeys([*end_ids, *(() if eos is None else (eos,))]))
    return ChatFormat(template, source, end_ids[:1], stops, end_text, tokenizer)


def _raw(tokenizer: Any, add_bos: bool | None = None) -> ChatFormat:
    """Raw prompts; with the BOS text first where the checkpoint says its model expects BOS before
    every text (`add_bos`) or the tokenizer's own encoding starts every text with it (Gemma's model
    needs it and repeats itself without it), so that raw prompts are encoded as the model expects."""
    eos, bos = tokenizer.eos_token_id, getattr(tokenizer, "bos_token_id", None)
    wants_bos = bos is not None and tokenizer.bos_token
    prefix = ""
    if wants_bos and (add_bos or tokenizer("a")["input_ids"][:1] == [bos]):
        prefix = tokenizer.bos_token
    ends = () if eos is None else (eos,)
    return ChatFormat(stop_ids=ends, answer_end=ends, prefix=prefix)


def chat_mode() -> str:
    """The mode load_model applies: the innermost `use_chat_template`, else $LORAPORT_CHAT_TEMPLATE,
    else "auto"."""
    mode = _MODE.get() or os.environ.get("LORAPORT_CHAT_TEMPLATE") or "auto"
    _check_mode(mode)
    return mode


@contextlib.contextmanager
def use_chat_template(mode: str | None) -> Iterator[None]:
    """Models loaded inside the block use `mode` (None: leave the current one)."""
    if mode is not None:
        _check_mode(mode)
    token = _MODE.set(mode) if mode is not None else None
    try:
        yield
    finally:
        if token is not None:
            _MODE.reset(token)


def attach(tokenizer: Any, fmt: ChatFormat) -> Any:
    setattr(tokenizer, _ATTR, fmt)
    return tokenizer


def chat_format(tokenizer: Any) -> ChatFormat:
    """The format load_model attached to `tokenizer`; raw prompts (BOS first where the tokenizer's own
    encoding starts with it, as for a loaded one) for a tokenizer it did not load."""
    fmt = getattr(tokenizer, _ATTR, None)
    return _raw(tokenizer) if fmt is None else fmt
