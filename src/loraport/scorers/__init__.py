"""Scorers: pure functions from a model's text to a Verdict, one registry.

    from loraport.scorers import SCORERS, score
    verdict = score(prediction, item)            # uses SCORERS.get(item.scorer)
    verdict.correct, verdict.extracted, verdict.status   # status "ok" or "invalid"

Registered: numeric_strict, numeric_flexible (GSM8K style; report both side by side),
exact_match, choice_letter (generative multiple choice), code_exec (runs in loraport.sandbox;
`score_code_batch` for many at once). `invalid` (no parseable answer) is kept apart from wrong, so
parse-failure rates can be reported per cell. `agreement` (loraport.scorers.agreement) compares two
scorers, or a scorer and a model judge, on the same items: κ, PABAK, AC1, McNemar, headline shift.
Log-likelihood choice ranking and the model judge (loraport.evaluate.judge) need a model and live
with the evaluator, not here. `pass_at_k` is the unbiased pass@k estimator.
"""

from loraport.scorers.agreement import Agreement, Scores, agreement, agreement_by, headline_shifts
from loraport.scorers.base import SCORERS, Scorer, Status, Verdict, score
from loraport.scorers.choice import choice_letter, extract_letter, valid_letters
from loraport.scorers.code import code_exec, extract_program, score_code_batch
from loraport.scorers.metrics import pass_at_k
from loraport.scorers.numeric import numeric_flexible, numeric_strict, parse_number
from loraport.scorers.text import exact_match, normalize_text

__all__ = [
    "SCORERS",
    "Agreement",
    "Scorer",
    "Scores",
    "Status",
    "Verdict",
    "agreement",
    "agreement_by",
    "choice_letter",
    "code_exec",
    "exact_match",
    "extract_letter",
    "extract_program",
    "headline_shifts",
    "normalize_text",
    "numeric_flexible",
    "numeric_strict",
    "parse_number",
    "pass_at_k",
    "score",
    "score_code_batch",
    "valid_letters",
]
