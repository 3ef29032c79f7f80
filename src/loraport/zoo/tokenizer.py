"""The zoo's two tokenizers, built with `tokenizers` and wrapped for transformers.

    tok = build_tokenizer("bytes", corpus)     # one token per byte (a character model)
    tok = build_tokenizer("bpe", corpus, 640)  # byte-level BPE with merges learned on the corpus

Both reserve id 0 for `<pad>` and id 1 for `<eos>`; every string encodes (byte-level), so the
two tokenizers differ in how they segment text, not in what they can represent.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from loraport.errors import ModelLoadError

PAD, EOS = "<pad>", "<eos>"
KINDS = ("bytes", "bpe")


def build_tokenizer(kind: str, corpus: Sequence[str], vocab_size: int = 640) -> PreTrainedTokenizerFast:
    """A fast tokenizer of `kind` ("bytes" or "bpe"); deterministic for the same corpus."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if kind == "bytes":
        size = len(alphabet) + 2
    elif kind == "bpe":
        size = vocab_size
    else:
        raise ModelLoadError(f"tokenizer kind {kind!r} is not one of {KINDS}")
    tok = Tokenizer(models.BPE())
    # Digits are split one by one (as Llama-3 and Qwen2 do), so numbers tokenize uniformly.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        min_frequency=2,
        special_tokens=[PAD, EOS],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(corpus if kind == "bpe" else [], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=None, unk_token=None
    )
