"""LoRA training on a base model with a recipe (and the loop zoo pretraining shares).

from loraport.train import Recipe, train_lora
train_lora("tiny-llama-y", "math_add", Recipe(rank=8, epochs=3), out="runs/y-math_add")
"""

from loraport.train.lora import LOG_NAME, Trained, default_targets, lora_factors, train_lora, train_on_items
from loraport.train.recipe import Recipe

__all__ = ["LOG_NAME", "Recipe", "Trained", "default_targets", "lora_factors", "train_lora", "train_on_items"]
