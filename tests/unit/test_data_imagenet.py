import hashlib

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
