"""Scoring models on tasks: batched greedy generation, log-likelihood choice ranking, per-item records.

from loraport.evaluate import evaluate
result = evaluate("tiny-llama-y", "sci_which", adapter="runs/oracle", n=300)
result.summary()   # {"choice_letter": {...}, "loglik_choice": {...}}
judged = Judge.load(JudgeConfig("smollm2-135m-instruct")).judge_result(result, items)  # a model judge
"""

from loraport.evaluate.generate import continuation_logprobs, generate
from loraport.evaluate.judge import Judge, JudgeConfig, parse_verdict
from loraport.evaluate.merge import merge_adapter, merge_factors
from loraport.evaluate.run import EvalResult, Record, evaluate, evaluate_items

__all__ = [
    "EvalResult",
    "Judge",
    "JudgeConfig",
    "Record",
    "continuation_logprobs",
    "evaluate",
    "evaluate_items",
    "generate",
    "merge_adapter",
    "merge_factors",
    "parse_verdict",
]
