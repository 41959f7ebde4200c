"""Replication manifests, published claims, comparison tables and the regression check.

Names are imported on first use: reading a manifest does not import pandas.
"""

from nas_impl.lazy import lazy_attributes

_WHERE = {
    "VERDICTS": "compare", "compare_replication": "compare",
    "SCALES": "manifest", "Experiment": "manifest", "Replication": "manifest", "load_replication": "manifest",
    "PublishedRow": "published", "load_published": "published",
    "Difference": "regress",
}
# `regress` is a submodule: its function is `nas_impl.replication.regress.regress` (a lazy name equal to a
# submodule's would turn into the module as soon as anything imports the submodule).
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
