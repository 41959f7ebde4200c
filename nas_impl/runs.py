"""From command-line names to the objects of one run: device, input size, model spec and its fit
to the data (the loaders: `nas_impl.run_data`)."""

from __future__ import annotations

from typing import Any

import torch

from nas_impl.errors import NasReproError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NasReproError(f"device '{name}' requested but CUDA is not available: use --device cpu or auto")
    return torch.device(name)


def parse_input_size(text: str) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise NasReproError(f"--input-size '{text}' must look like CxHxW, e.g. 3x32x32") from None
    if min(c, h, w) < 1:
        raise NasReproError(f"--input-size '{text}': each of C, H and W must be at least 1, e.g. 3x32x32")
    return c, h, w


def architecture_metrics(spec: Any, input_size: tuple[int, int, int], origin: str,
                         dataset: str | None = None) -> dict[str, Any]:
    """Params, MACs and memory of `spec` at `input_size`; counting them runs the network once, so a
    network that cannot take this input fails here, before any training, with one clear message."""
    from nas_impl.metrics import model_metrics
    from nas_impl.models import build_model

    model = build_model(spec)
    try:
        return model_metrics(model, input_size)
    except RuntimeError as err:
        raise _does_not_fit(origin, input_size, dataset, err) from None


def check_fits(model: torch.nn.Module, input_size: tuple[int, int, int], num_classes: int, origin: str,
               dataset: str) -> None:
    """One forward pass of a batch of 2 inputs of `input_size`, and the number of classes (a language
    model: words) it predicts."""
    from nas_impl.metrics.macs import example_input
    from nas_impl.tasks import task_of

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, _ = task_of(model).forward(model, example_input(model, input_size, batch_size=2), None)
    except RuntimeError as err:
        raise _does_not_fit(origin, input_size, dataset, err) from None
    finally:
        model.train(was_training)
    if logits.shape[-1] != num_classes:
        raise NasReproError(f"{origin}: the network predicts {tuple(logits.shape[1:])} outputs, but dataset "
                            f"'{dataset}' has {num_classes} classes: evaluate it on the dataset it was trained on")


def _does_not_fit(origin: str, input_size: tuple[int, int, int], dataset: str | None,
                  err: RuntimeError) -> NasReproError:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    size = "x".join(str(v) for v in input_size)
    on = f"dataset '{dataset}' ({size} images)" if dataset else f"{size} inputs"
    return NasReproError(f"{origin}: the network cannot run on {on}: {lines[0] if lines else type(err).__name__}; "
                         "use a spec made for this input size and channel count, or another dataset")


def adapt_spec(spec: dict[str, Any], num_classes: int, in_channels: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit the spec's head and stem to the dataset; return the spec and what was changed."""
    changed = {}
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if spec.get(key) != value:
            changed[key] = {"spec": spec.get(key), "dataset": value}
    return {**spec, "num_classes": num_classes, "in_channels": in_channels}, changed
