"""Tasks: what a network is trained and judged on, apart from its architecture.

A task owns the loss, the evaluation metrics, the example input that MACs and memory are counted
on, and the per-epoch columns of `train_log.csv` and the keys of `metrics.json` / `eval.json`:

- `image-classification` (every image dataset): cross-entropy with label smoothing, top-1/top-5;
  input (C, H, W) images.
- `language-modelling` (`ptb`): next-token cross-entropy over truncated-BPTT windows whose LSTM
  state is carried from window to window; perplexity; input one window of token ids.

A dataset names its task (`task_for_dataset`), and so does a model family (`task_of`: a family
class attribute `task`, image classification when absent).
"""

from __future__ import annotations

from typing import Any

from nas_impl.tasks.base import Task
from nas_impl.tasks.image import ImageClassification
from nas_impl.tasks.language import LanguageModelling

TASKS: dict[str, Task] = {task.name: task for task in (ImageClassification(), LanguageModelling())}


def get_task(name: str) -> Task:
    return TASKS[name]


def task_for_dataset(dataset: str) -> Task:
    from nas_impl.data.registry import TEXT_DATASETS

    return TASKS["language-modelling" if dataset in TEXT_DATASETS else "image-classification"]


def task_of(model: Any) -> Task:
    """The task a built network (or its class) is made for."""
    return TASKS[getattr(model, "task", "image-classification")]


__all__ = ["TASKS", "ImageClassification", "LanguageModelling", "Task", "get_task", "task_for_dataset", "task_of"]
