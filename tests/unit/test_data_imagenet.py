import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from nas_impl.data import load_imagenet, make_loader
from nas_impl.errors import DataError

CLASSES = ("n01440764", "n01443537", "n01484850")
COUNTS = {"num_classes": 3, "train_images": 6, "val_images": 3}


def write_tree(root, train_per_class=2, val_per_class=1):
    folder = root / "imagenet"
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c, wnid in enumerate(CLASSES):
            (folder / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40, 30), (80 * c, 10 * i, 200)).save(folder / split / wnid / f"img{i}.png")
    return folder


def test_tiny_tree_loads(tmp_path):
    write_tree(tmp_path)
    imagenet = load_imagenet(tmp_path, **COUNTS)
    assert imagenet.classes == CLASSES and imagenet.num_classes == 3
    train = imagenet.train_dataset()
    val = imagenet.val_dataset()
    assert len(train) == 6 and len(val) == 3
    image, label = train[2]
    assert image.shape == (3, 224, 224) and image.dtype == torch.float32 and label == 1
    loader = make_loader(val, batch_size=2, shuffle=False, workers=0, seed=0)
    x, y = next(iter(loader))
    assert x.shape == (2, 3, 224, 224) and y.tolist() == [0, 1]


def test_make_loader_order_follows_seed(tmp_path):
    write_tree(tmp_path, train_per_class=4)
    imagenet = load_imagenet(tmp_path, num_classes=3, train_images=12, val_images=3)
    dataset = imagenet.train_dataset(transform=lambda img: 0)

    def order(seed):
        return [y for _, ys in make_loader(dataset, 4, True, 0, seed, drop_last=True) for y in ys.tolist()]

    assert order(1) == order(1) and order(1) != order(2)
    loader = make_loader(dataset, 4, True, 0, 1, drop_last=True)
    assert loader.pin_memory == torch.cuda.is_available() and len(loader) == 3


def test_count_mismatch_names_folder_and_expected_counts(tmp_path):
    folder = write_tree(tmp_path)
    with pytest.raises(DataError) as info:
        load_imagenet(tmp_path)  # the real ILSVRC2012 counts
    message = str(info.value)
    assert str(folder / "train") in message and "6 images in 3 class folders" in message
    assert "1000 class folders holding 1,281,167 train and 50,000 val images" in message


def test_class_folders_must_agree(tmp_path):
    folder = write_tree(tmp_path)
    (folder / "val" / "n09999999").mkdir()
    with pytest.raises(DataError, match=r"class folders of .*train and .*val differ .*only in val: \['n09999999'\]"):
        load_imagenet(tmp_path, **COUNTS)


def test_missing_split_folder(tmp_path):
    with pytest.raises(DataError, match=r"imagenet/train/ not found"):
        load_imagenet(tmp_path, **COUNTS)


def test_manifest_verified_when_present(tmp_path):
    folder = write_tree(tmp_path)
    image = folder / "train" / CLASSES[0] / "img0.png"
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{digest}  train/{CLASSES[0]}/img0.png\n")
    load_imagenet(tmp_path, **COUNTS)
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  train/{CLASSES[0]}/img0.png\n")
    with pytest.raises(DataError, match=f"img0.png: wrong sha256 checksum: expected {'0' * 64}, got {digest}"):
        load_imagenet(tmp_path, **COUNTS)
    load_imagenet(tmp_path, verify_manifest=False, **COUNTS)


# -- ImageNet training augmentation: ColorJitter and PCA lighting -----------------------------------
# AlexNet's ImageNet RGB principal components as published (fb.resnet.torch), typed here on their
# own so that a typo in the package's copy fails the tests below.
EIGVAL = (0.2175, 0.0188, 0.0045)
EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


def pixels(image):
    return [tuple(p) for p in np.asarray(image).reshape(-1, 3).tolist()]


def test_pca_constants_are_the_published_orthonormal_basis():
    from nas_impl.data import imagenet

    assert imagenet.PCA_EIGVAL == EIGVAL and imagenet.PCA_EIGVEC == EIGVEC
    v = torch.tensor(EIGVEC, dtype=torch.float64)
    assert torch.allclose(v.T @ v, torch.eye(3, dtype=torch.float64), atol=1e-4)  # columns: unit eigenvectors


def test_lighting_adds_the_hand_computed_shift_clips_and_truncates():
    from nas_impl.data.imagenet import apply_lighting

    # alpha = (20, 500, 1000): alpha * eigval = (4.35, 9.4, 4.5), so the shift is
    #   R: -0.5675*4.35 + 0.7192*9.4 + 0.4009*4.5 = -2.468625 + 6.76048 + 1.80405 =  6.095905
    #   G: -0.5808*4.35 - 0.0045*9.4 - 0.8140*4.5 = -2.52648  - 0.0423  - 3.663   = -6.23178
    #   B: -0.5836*4.35 - 0.6948*9.4 + 0.4203*4.5 = -2.53866  - 6.53112 + 1.89135 = -7.17843
    image = Image.new("RGB", (3, 1))
    image.putdata([(100, 100, 100), (252, 3, 5), (0, 255, 255)])
    out = apply_lighting(image, (20, 500, 1000))
    assert out.mode == "RGB" and out.size == (3, 1)
    # 106.10 -> 106, 93.77 -> 93, 92.82 -> 92; 258.1 -> 255, -3.2 -> 0, -2.2 -> 0; 6.1 -> 6, 248.8 -> 248, 247.8 -> 247
    assert pixels(out) == [(106, 93, 92), (255, 0, 0), (6, 248, 247)]


def test_lighting_at_the_official_scale_moves_a_pixel_by_at_most_one_level():
    """The official transforms add a shift meant for [0, 1] pixels to 0-255 pixels and truncate:
    a negative shift (about -0.012 here) lowers every non-zero value by one, a positive one does nothing."""
    from nas_impl.data.imagenet import apply_lighting

    image = Image.new("RGB", (2, 1))
    image.putdata([(100, 1, 0), (255, 37, 200)])
    assert pixels(apply_lighting(image, (0.1, 0, 0))) == [(99, 0, 0), (254, 36, 199)]
    assert pixels(apply_lighting(image, (-0.1, 0, 0))) == [(100, 1, 0), (255, 37, 200)]


def test_lighting_draws_its_weights_from_normal_noise_of_alphastd():
    from nas_impl.data.imagenet import Lighting

    image = Image.new("RGB", (1, 1), (128, 128, 128))
    alpha = torch.randn(3, generator=torch.Generator().manual_seed(7)).double() * 200
    shift = torch.tensor(EIGVEC, dtype=torch.float64) @ (alpha * torch.tensor(EIGVAL, dtype=torch.float64))
    expected = tuple(int(v) for v in (128 + shift).clamp(0, 255))  # int() truncates, as astype(uint8)
    assert pixels(Lighting(200, generator=torch.Generator().manual_seed(7))(image)) == [expected]
    assert Lighting(0.0)(image) is image


def transform_names(transform):
    return [type(t).__name__ for t in transform.transforms]


BASE_TRAIN = ["RandomResizedCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
EVAL = ["Resize", "CenterCrop", "ToTensor", "Normalize"]


@pytest.mark.parametrize("augment, names", [
    (None, BASE_TRAIN),
    ({"crop_padding": 4, "flip": True}, BASE_TRAIN),
    ({"color_jitter": [0.0, 0.0, 0.0, 0.0], "lighting": 0}, BASE_TRAIN),
    ({"color_jitter": [0.4, 0.4, 0.4, 0.2]}, ["RandomResizedCrop", "ColorJitter", *BASE_TRAIN[1:]]),
    ({"lighting": 0.1}, ["RandomResizedCrop", "Lighting", *BASE_TRAIN[1:]]),
    # TAS and AutoSlim: crop, jitter, lighting, flip, ToTensor, normalise
    ({"flip": True, "color_jitter": [0.4, 0.4, 0.4, 0.2], "lighting": 0.1},
     ["RandomResizedCrop", "ColorJitter", "Lighting", *BASE_TRAIN[1:]]),
])
def test_the_training_transform_has_jitter_and_lighting_only_when_asked(tmp_path, augment, names):
    from nas_impl.data import Augmentation

    write_tree(tmp_path)
    imagenet = load_imagenet(tmp_path, **COUNTS)
    transform = imagenet.train_transform(Augmentation.from_dict(augment))
    assert transform_names(transform) == names
    assert transform_names(imagenet.train_transform()) == BASE_TRAIN
    assert transform_names(imagenet.val_transform()) == EVAL


def test_the_jitter_factors_reach_torchvision(tmp_path):
    from nas_impl.data import Augmentation

    write_tree(tmp_path)
    transform = load_imagenet(tmp_path, **COUNTS).train_transform(
        Augmentation.from_dict({"color_jitter": [0.4, 0.3, 0.2, 0.1], "lighting": 0.1}))
    jitter, lighting = transform.transforms[1:3]
    assert jitter.brightness == pytest.approx((0.6, 1.4)) and jitter.contrast == pytest.approx((0.7, 1.3))
    assert jitter.saturation == pytest.approx((0.8, 1.2)) and jitter.hue == pytest.approx((-0.1, 0.1))
    assert lighting.alphastd == 0.1


@pytest.mark.parametrize("augment, scale", [(None, (0.08, 1.0)), ({"crop_scale": [0.25, 1.0]}, (0.25, 1.0))])
def test_the_crop_covers_the_recipes_area_range(tmp_path, augment, scale):
    from nas_impl.data import Augmentation

    write_tree(tmp_path)
    crop = load_imagenet(tmp_path, **COUNTS).train_transform(Augmentation.from_dict(augment)).transforms[0]
    assert tuple(crop.scale) == pytest.approx(scale)
    # A crop never covers less of the image than the range's lower end (torchvision falls back to
    # a centre crop of the whole image after ten misses, which only enlarges it).
    image = Image.new("RGB", (200, 160))
    areas = [crop.get_params(image, crop.scale, crop.ratio) for _ in range(300)]
    assert min(h * w for _, _, h, w in areas) >= scale[0] * 200 * 160 * 0.95  # w, h are rounded


def test_run_data_applies_the_recipes_augmentation_to_training_images_only(tmp_path, monkeypatch):
    from nas_impl import data
    from nas_impl.run_data import Holdout, run_data
    from nas_impl.training.recipe import recipe_from_dict

    write_tree(tmp_path, train_per_class=4)
    real = data.load_imagenet
    monkeypatch.setattr(data, "load_imagenet", lambda root: real(root, num_classes=3, train_images=12, val_images=3))
    recipe = recipe_from_dict({"epochs": 1, "batch_size": 4, "eval_batch_size": 3,
                               "augment": {"flip": True, "color_jitter": [0.4, 0.4, 0.4, 0.2], "lighting": 0.1}})
    found = run_data("imagenet", recipe, 0, torch.device("cpu"), data_root=tmp_path)
    train, evaluation = found.train_loader.dataset, found.eval_loader.dataset
    assert transform_names(train.transform) == ["RandomResizedCrop", "ColorJitter", "Lighting", *BASE_TRAIN[1:]]
    assert transform_names(evaluation.transform) == EVAL
    x, y = next(iter(found.train_loader))  # the transform runs (in worker processes)
    assert x.shape == (4, 3, 224, 224) and torch.isfinite(x).all() and len(y) == 4

    held = run_data("imagenet", recipe, 0, torch.device("cpu"), data_root=tmp_path, evaluate=None,
                    plan=Holdout(fraction=0.25, split_seed=0, scored=3, batch_size=3))
    assert transform_names(held.loaders["train"].dataset.dataset.transform)[1:3] == ["ColorJitter", "Lighting"]
    assert transform_names(held.loaders["scored"].dataset.dataset.transform) == EVAL

    plain = run_data("imagenet", recipe_from_dict({"epochs": 1, "batch_size": 4}), 0, torch.device("cpu"),
                     data_root=tmp_path, evaluate=None)
    assert transform_names(plain.train_loader.dataset.transform) == BASE_TRAIN
