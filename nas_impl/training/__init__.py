"""The shared training pipeline: recipes, schedules, losses, checkpoints, the trainer."""

from nas_impl.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from nas_impl.training.losses import classification_loss, distillation_loss
from nas_impl.training.optim import build_optimizer, parameter_groups
from nas_impl.training.recipe import Distillation, Recipe, load_recipe, recipe_from_dict
from nas_impl.training.schedule import lr_at
from nas_impl.training.seeding import epoch_seed, seed_everything
from nas_impl.training.trainer import EvalResult, Trainer, evaluate

__all__ = [
    "Distillation", "EvalResult", "Recipe", "Trainer", "build_optimizer", "classification_loss",
    "distillation_loss", "epoch_seed", "evaluate", "load_checkpoint", "load_recipe", "lr_at",
    "model_from_checkpoint", "parameter_groups", "recipe_from_dict", "save_checkpoint", "seed_everything",
]
