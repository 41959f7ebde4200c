"""Datasets (Fashion-MNIST, CIFAR-10/100, the shared CIFAR-10 JPEG copy, npz shards, ImageNet,
Penn Treebank), checksums, seeded class-balanced splits and a device-resident loader."""

from nas_impl.data.augment import Augmentation
from nas_impl.data.image_dataset import ImageDataset
from nas_impl.data.imagenet import ImageNetFolders, load_imagenet, make_loader
from nas_impl.data.loader import TensorLoader
from nas_impl.data.paths import resolve_data_root
from nas_impl.data.ptb import PennTreebank, Vocabulary, batchify, get_batch, load_ptb
from nas_impl.data.registry import DATASET_INFO, DatasetInfo, dataset_info, list_datasets, load_dataset
from nas_impl.data.splits import SplitRecord, holdout, split_halves, subset

__all__ = [
    "DATASET_INFO",
    "Augmentation",
    "DatasetInfo",
    "ImageDataset",
    "ImageNetFolders",
    "PennTreebank",
    "SplitRecord",
    "TensorLoader",
    "Vocabulary",
    "batchify",
    "dataset_info",
    "get_batch",
    "holdout",
    "list_datasets",
    "load_dataset",
    "load_imagenet",
    "load_ptb",
    "make_loader",
    "resolve_data_root",
    "split_halves",
    "subset",
]
