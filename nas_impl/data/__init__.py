"""Datasets (Fashion-MNIST, CIFAR-10/100, the shared CIFAR-10 JPEG copy, npz shards, ImageNet,
Penn Treebank), checksums, seeded class-balanced splits and a device-resident loader.

Names are imported on first use, so that checking a recipe's augmentation or a dataset's name
does not import torch.
"""

from nas_impl.lazy import lazy_attributes

_WHERE = {
    "Augmentation": "augment_spec",
    "ImageDataset": "image_dataset",
    "ImageNetFolders": "imagenet", "load_imagenet": "imagenet", "make_loader": "imagenet",
    "TensorLoader": "loader",
    "resolve_data_root": "paths",
    "PennTreebank": "ptb", "Vocabulary": "ptb", "batchify": "ptb", "get_batch": "ptb", "load_ptb": "ptb", "load_ptb_proxy": "ptb",
    "DATASET_INFO": "registry", "DatasetInfo": "registry", "dataset_info": "registry",
    "list_datasets": "registry", "load_dataset": "registry",
    "SplitRecord": "splits", "holdout": "splits", "split_halves": "splits", "subset": "splits",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
