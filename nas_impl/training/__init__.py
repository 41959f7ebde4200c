"""The shared training pipeline: recipes, schedules, losses, checkpoints, the trainer.

Names are imported on first use: reading a recipe must not import torch (workflow jobs that only
read YAML start in a fraction of a second).
"""

from nas_impl.lazy import lazy_attributes

_WHERE = {
    "load_checkpoint": "checkpoint", "model_from_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "classification_loss": "losses", "distillation_loss": "losses",
    "build_optimizer": "optim", "parameter_groups": "optim",
    "Distillation": "recipe", "Recipe": "recipe", "load_recipe": "recipe", "recipe_from_dict": "recipe",
    "lr_at": "schedule",
    "epoch_seed": "seeding", "seed_everything": "seeding",
    "Trainer": "trainer",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
