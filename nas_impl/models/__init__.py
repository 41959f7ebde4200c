"""Architecture families, named variants and `build_model(spec)`.

Importing this package registers every family and variant.
"""

from nas_impl.models import (  # noqa: F401  (registers)
    dag_rnn,
    lstm_lm,
    mbconv_chain,
    memnas_cells,
    mnasnet,
    mobilenet_v1,
    mobilenet_v2,
    pyramid_tree,
    resnet_cifar,
    resnet_imagenet,
    shrink_cnn,
    wrn_cifar,
)
from nas_impl.models.registry import (
    SpecModel,
    build_model,
    list_families,
    list_models,
    load_spec,
    natural_input,
    normalize_spec,
    parse_spec,
    register_family,
    register_model,
    save_spec,
    spec_for,
)

__all__ = [
    "SpecModel",
    "build_model",
    "list_families",
    "list_models",
    "load_spec",
    "natural_input",
    "normalize_spec",
    "parse_spec",
    "register_family",
    "register_model",
    "save_spec",
    "spec_for",
]
