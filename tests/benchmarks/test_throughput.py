"""Training throughput on the real CIFAR-10 copy, 2 CPU cores, batch 128, side by side:

(a) the suite: `Trainer.train_epoch` over the device-resident `TensorLoader` (crop + flip on
    whole batches), channels_last, per-step LR, loss/accuracy bookkeeping, NaN checks;
(b) the textbook loop: a torch DataLoader (2 workers) with torchvision transforms on PIL
    images, NCHW model; also (b') the same loop with the model in channels_last, which shows
    how much of (a)/(b) is the memory format and how much the data path;
(c) the bare model step of (a) (channels_last) on pre-made, pre-normalised tensors: the
    ceiling of what the trainer can reach;
(d) (a) with the step's network compiled (`nasrepro train --compile`); its compile time is in
    the warm-up round, which is not counted.

Targets (reported, not asserted): (a) >= 1.3x (b), and (a) within 5% of (c).
Run with `make bench`, which also fixes the allocator (see the Makefile).
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from nas_impl import data
from nas_impl.models import build_model
from nas_impl.training import Trainer, recipe_from_dict
from nas_impl.training.seeding import seed_everything

BATCH = 128
STEPS = 12
ROUNDS = 5
MODELS = ["resnet20-cifar", "mobilenetv2-cifar"]
CHANNELS_LAST = torch.channels_last


@pytest.fixture(scope="module")
def cifar(shared_data):
    ds = data.load_dataset("cifar10-jpg", root=shared_data)
    n = BATCH * STEPS
    return ds, ds.train_x[:n], ds.train_y[:n]


def fresh(name: str, device: str = "cpu", memory_format=torch.contiguous_format):
    seed_everything(0)
    model = build_model(name).to(device, memory_format=memory_format)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)


def plain_epoch(model, opt, batches, memory_format=torch.contiguous_format) -> None:
    """The textbook training loop, without the suite's trainer."""
    model.train()
    for xb, yb in batches:
        loss = F.cross_entropy(model(xb.contiguous(memory_format=memory_format)), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def suite_epoch(ds, x, y, name: str, out_dir, compile_step: bool = False):
    recipe = recipe_from_dict({"epochs": 1, "batch_size": BATCH, "lr": 0.01, "nesterov": True,
                               "augment": {"crop_padding": 4, "flip": True}})
    loader = data.TensorLoader(x, y, BATCH, mean=ds.mean, std=ds.std, augment=data.Augmentation(4, True),
                               shuffle=True, drop_last=True, seed=0, device=torch.device("cpu"), channels_last=True)
    model, _ = fresh(name)
    trainer = Trainer(model, recipe, loader, loader, out_dir=out_dir, seed=0, compile_step=compile_step)
    return lambda: trainer.train_epoch(0)


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform) -> None:
        self.x, self.y, self.transform = x.permute(0, 2, 3, 1).numpy(), y.tolist(), transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), self.y[i]


def dataloader_epoch(ds, x, y, name: str, memory_format):
    from torchvision import transforms as T

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(ds.mean, ds.std)])
    loader = torch.utils.data.DataLoader(PILDataset(x, y, transform), batch_size=BATCH, shuffle=True,
                                         num_workers=2, drop_last=True, persistent_workers=True)
    model, opt = fresh(name, memory_format=memory_format)
    return lambda: plain_epoch(model, opt, loader, memory_format)


def bare_epoch(ds, x, y, name: str):
    mean, std = torch.tensor(ds.mean).view(1, -1, 1, 1), torch.tensor(ds.std).view(1, -1, 1, 1)
    batches = [(((x[i:i + BATCH].float() / 255 - mean) / std).contiguous(memory_format=CHANNELS_LAST), y[i:i + BATCH])
               for i in range(0, BATCH * STEPS, BATCH)]
    model, opt = fresh(name, memory_format=CHANNELS_LAST)
    return lambda: plain_epoch(model, opt, batches, CHANNELS_LAST)


@pytest.mark.parametrize("name", MODELS)
def test_training_throughput(benchmark, cifar, tmp_path, name, record_throughput):
    """One benchmark round = one epoch of each variant, interleaved, so that the ratios compare
    runs made seconds apart on the same machine state (these VMs drift by 10-30% over minutes)."""
    ds, x, y = cifar
    variants = {
        "suite": suite_epoch(ds, x, y, name, tmp_path),
        "dataloader": dataloader_epoch(ds, x, y, name, torch.contiguous_format),
        "dataloader+channels_last": dataloader_epoch(ds, x, y, name, CHANNELS_LAST),
        "bare": bare_epoch(ds, x, y, name),
        "suite+compile": suite_epoch(ds, x, y, name, tmp_path / "compiled", compile_step=True),
    }
    seconds: dict[str, list[float]] = {v: [] for v in variants}

    def one_round() -> None:
        for variant, epoch in variants.items():
            start = time.perf_counter()
            epoch()
            seconds[variant].append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    for variant, times in seconds.items():
        ips = BATCH * STEPS / statistics.median(times[1:])  # the first entry is the warm-up round
        benchmark.extra_info[variant] = ips
        record_throughput(name, variant, ips)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU throughput is measured where CUDA is present")
def test_gpu_resnet56_bf16_channels_last(benchmark, cifar, tmp_path, record_throughput):
    ds, _, _ = cifar
    device = torch.device("cuda")
    recipe = recipe_from_dict({"epochs": 1, "batch_size": 256, "lr": 0.05})
    loader = data.TensorLoader(ds.train_x, ds.train_y, 256, mean=ds.mean, std=ds.std, augment=data.Augmentation(4, True),
                               shuffle=True, drop_last=True, seed=0, device=device, channels_last=True)
    model, _ = fresh("resnet56-cifar", "cuda")
    trainer = Trainer(model, recipe, loader, loader, out_dir=tmp_path, seed=0, device=device)

    def epoch():
        trainer.train_epoch(0)
        torch.cuda.synchronize()

    benchmark.pedantic(epoch, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    record_throughput("resnet56-cifar", "gpu bf16 channels_last", 256 * len(loader) / benchmark.stats.stats.median)
