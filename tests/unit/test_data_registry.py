import pytest
import torch

from nas_impl.data import DATASET_INFO, dataset_info, list_datasets, load_dataset, resolve_data_root
from nas_impl.data.registry import CIFAR10_JPG_SHA256
from nas_impl.errors import DataError


@pytest.fixture(scope="module")
def cifar10_jpg(shared_data):
    return load_dataset("cifar10-jpg", root=shared_data)


def test_cifar10_jpg_real(cifar10_jpg):
    data = cifar10_jpg
    info = DATASET_INFO["cifar10-jpg"]
    assert data.train_x.shape == (50000, 3, 32, 32) and data.test_x.shape == (10000, 3, 32, 32)
    assert (len(data.train_x), len(data.test_x), data.num_classes) == (info.train_size, info.test_size, 10)
    assert data.input_size == info.input_size
    assert data.train_y.bincount().tolist() == [5000] * 10 and data.test_y.bincount().tolist() == [1000] * 10
    assert data.mean == pytest.approx((0.4913, 0.4821, 0.4465), abs=1e-3)
    assert data.std == pytest.approx((0.2452, 0.2428, 0.2606), abs=1e-3)
    assert data.classes[0] == "airplane" and data.classes[9] == "truck"
    assert data.train_x.dtype == torch.uint8 and data.train_x.device.type == "cpu"


def test_cifar10_jpg_pins_the_readme_checksums(shared_data):
    readme = (shared_data / "cifar10_jpg" / "README.md").read_text()
    for name, digest in CIFAR10_JPG_SHA256.items():
        assert f"{digest}  {name}" in readme


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DataError) as info:
        load_dataset("cifar11")
    message = str(info.value)
    assert "'cifar11'" in message and all(name in message for name in list_datasets())
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        dataset_info("mnist")


def test_imagenet_is_known_but_loaded_separately():
    assert "imagenet" in list_datasets() and dataset_info("imagenet").input_size == (3, 224, 224)
    with pytest.raises(DataError, match="load_imagenet"):
        load_dataset("imagenet")


def test_data_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("NASREPRO_DATA", raising=False)
    assert str(resolve_data_root()) == "data"
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root("/elsewhere") != tmp_path


def test_missing_dataset_uses_env_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path))
    with pytest.raises(DataError, match=f"{tmp_path}/cifar-100-python.tar.gz"):
        load_dataset("cifar100")
    with pytest.raises(DataError, match=f"{tmp_path}/cifar10_jpg not found"):
        load_dataset("cifar10-jpg")
