import re

import pytest
import torch
import torch.nn.functional as F

from nas_impl.data import Augmentation, TensorLoader
from nas_impl.errors import SpecError

CPU = torch.device("cpu")


def pattern_images(n=64, channels=2, size=8):
    """Every pixel of an image is distinct and non-zero, so a window can be located exactly."""
    base = 1 + torch.arange(channels * size * size).view(channels, size, size)
    return base.expand(n, -1, -1, -1).to(torch.uint8).contiguous()


def raw_pixels(x):
    """Undo mean=0, std=1 normalisation: back to integer pixel values."""
    return (x * 255).round().to(torch.int64)


def make_loader(images, augment=None, batch_size=16, **kwargs):
    labels = torch.arange(len(images))
    channels = images.shape[1]
    kwargs.setdefault("mean", (0.0,) * channels)
    kwargs.setdefault("std", (1.0,) * channels)
    return TensorLoader(images, labels, batch_size, augment=augment, device=CPU, **kwargs)


def test_shapes_dtype_and_normalisation():
    images = torch.randint(0, 256, (10, 3, 5, 5), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    loader = TensorLoader(images, torch.arange(10), 4, mean=mean, std=std, device=CPU)
    batches = list(loader)
    assert len(loader) == 3 and [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (4, 3, 5, 5)
    expected = (images[:4].double() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    assert torch.allclose(x.double(), expected, atol=1e-5)
    assert y.tolist() == [0, 1, 2, 3]


def test_drop_last_and_shuffle_covers_every_sample_once():
    images = torch.zeros(10, 1, 2, 2, dtype=torch.uint8)
    loader = make_loader(images, batch_size=4, shuffle=True, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]
    loader = make_loader(images, batch_size=4, shuffle=True)
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))


def test_images_stay_paired_with_their_labels():
    labels = torch.arange(50)
    images = (labels + 1).to(torch.uint8).view(50, 1, 1, 1).expand(50, 2, 4, 4).contiguous()
    loader = TensorLoader(images, labels, 8, mean=(0, 0), std=(1, 1), augment=Augmentation(flip=True),
                          shuffle=True, device=CPU)
    for x, y in loader:
        assert torch.equal(raw_pixels(x)[:, 0, 0, 0], y + 1)


def collect(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b):
    return all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_deterministic_per_seed_and_epoch():
    aug = Augmentation(crop_padding=2, flip=True, cutout=3)
    first, second = (make_loader(pattern_images(), aug, shuffle=True, seed=7) for _ in range(2))
    first.set_epoch(3)
    second.set_epoch(3)
    epoch3 = collect(first)
    assert same(epoch3, collect(second))
    first.set_epoch(3)
    assert same(epoch3, collect(first))  # repeating an epoch repeats it exactly
    assert not same(epoch3, collect(first))  # ... and the next iteration is epoch 4
    fresh = make_loader(pattern_images(), aug, shuffle=True, seed=7)
    fresh.set_epoch(4)
    first.set_epoch(4)
    assert same(collect(first), collect(fresh))
    other_seed = make_loader(pattern_images(), aug, shuffle=True, seed=8)
    other_seed.set_epoch(3)
    assert not same(epoch3, collect(other_seed))


def test_global_rng_untouched():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    collect(make_loader(pattern_images(), Augmentation(2, True, 3), shuffle=True))
    assert torch.equal(torch.rand(2), expected)


def windows(padded, size, mirrored):
    """All size×size windows of a C×Hp×Wp tensor (and their mirror images if `mirrored`)."""
    found = []
    for dy in range(padded.shape[1] - size + 1):
        for dx in range(padded.shape[2] - size + 1):
            window = padded[:, dy : dy + size, dx : dx + size]
            found.append(window)
            if mirrored:
                found.append(window.flip(-1))
    return found


@pytest.mark.parametrize("flip", [False, True])
def test_crop_is_a_window_of_the_zero_padded_image(flip):
    images = pattern_images(n=200)
    padded = F.pad(images[0].to(torch.int64), (2, 2, 2, 2))
    candidates = windows(padded, 8, mirrored=flip)
    loader = make_loader(images, Augmentation(crop_padding=2, flip=flip), batch_size=50, shuffle=True)
    matched = set()
    for x, _ in loader:
        for sample in raw_pixels(x):
            hits = [k for k, window in enumerate(candidates) if torch.equal(sample, window)]
            assert hits, "output is not a window of the padded input"
            matched.add(hits[0])
    assert len(matched) > len(candidates) // 2  # offsets (and flips) really vary


def test_flip_only():
    images = pattern_images(n=100)
    original = images[0].to(torch.int64)
    outputs = [s for x, _ in make_loader(images, Augmentation(flip=True)) for s in raw_pixels(x)]
    flipped = [torch.equal(s, original.flip(-1)) for s in outputs]
    assert all(f or torch.equal(s, original) for f, s in zip(flipped, outputs))
    assert 20 < sum(flipped) < 80


def test_cutout_zeroes_a_square_clipped_at_the_border():
    size, side = 4, 12
    images = torch.full((300, 3, side, side), 255, dtype=torch.uint8)
    full_squares = 0
    for x, _ in make_loader(images, Augmentation(cutout=size), batch_size=100):
        for sample in x:
            zero = sample == 0
            assert torch.equal(zero, zero[0].expand_as(zero))  # same square in every channel
            rows = zero[0].any(1).nonzero().flatten()
            cols = zero[0].any(0).nonzero().flatten()
            assert len(rows) > 0
            height, width = len(rows), len(cols)
            assert zero[0].sum() == height * width  # a rectangle
            assert height == size or rows[0] == 0 or rows[-1] == side - 1
            assert width == size or cols[0] == 0 or cols[-1] == side - 1
            assert height <= size and width <= size
            full_squares += height == width == size
            assert torch.all(sample[~zero] == 1.0)
    assert full_squares > 50


def test_channels_last_and_no_augmentation_passthrough():
    images = pattern_images(n=4)
    x, _ = next(iter(make_loader(images, Augmentation(), channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(raw_pixels(x), images.to(torch.int64))


def test_augmentation_from_dict():
    assert Augmentation.from_dict({"crop_padding": 4, "flip": True}) == Augmentation(4, True, 0)
    assert Augmentation.from_dict(None) == Augmentation()
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['crop'\]"):
        Augmentation.from_dict({"crop": 4})


def test_imagenet_only_augmentation_is_refused_on_the_device_not_ignored(tmp_path):
    jitter = Augmentation.from_dict({"crop_padding": 4, "color_jitter": [0.4, 0.4, 0.4, 0.2]})
    assert jitter.color_jitter == (0.4, 0.4, 0.4, 0.2) and jitter.to_dict()["color_jitter"] == [0.4, 0.4, 0.4, 0.2]
    with pytest.raises(SpecError, match=r"recipe key 'augment\.color_jitter' applies to ImageNet only .* "
                                        r"remove it from this recipe's augment"):
        make_loader(pattern_images(), jitter)
    with pytest.raises(SpecError, match=r"'augment\.lighting' applies to ImageNet only"):
        make_loader(pattern_images(), Augmentation(lighting=0.1))
    with pytest.raises(SpecError, match=r"'augment\.crop_scale' applies to ImageNet only"):
        make_loader(pattern_images(), Augmentation.from_dict({"crop_scale": [0.25, 1.0]}))
    make_loader(pattern_images(), Augmentation(color_jitter=(0, 0, 0, 0), lighting=0.0))  # both off: accepted
    assert "crop_scale" not in Augmentation().to_dict()  # unset, it leaves a recipe's identity as it was

    from nas_impl.run_data import run_data
    from nas_impl.training.recipe import recipe_from_dict
    from tests.unit.test_data_npz import make_shards

    make_shards(tmp_path)
    recipe = recipe_from_dict({"epochs": 1, "batch_size": 2, "augment": {"flip": True, "lighting": 0.1,
                                                                         "color_jitter": [0.4, 0.4, 0.4, 0.0]}})
    dataset = re.escape(f"npz:{tmp_path}")
    with pytest.raises(SpecError, match=rf"recipe keys 'augment\.color_jitter' and 'augment\.lighting' apply to "
                                        rf"ImageNet only .*; dataset '{dataset}' is augmented on the device"):
        run_data(f"npz:{tmp_path}", recipe, 0, torch.device("cpu"), data_root=None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_device_resident():
    loader = TensorLoader(pattern_images(), torch.arange(64), 16, mean=(0, 0), std=(1, 1),
                          augment=Augmentation(2, True, 3), shuffle=True, device="cuda")
    assert loader.images.is_cuda
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda and x.shape == (16, 2, 8, 8)
    loader.set_epoch(0)
    x2, _ = next(iter(loader))
    assert torch.equal(x, x2)
