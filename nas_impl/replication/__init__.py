"""Replication manifests, published claims, comparison tables and the regression check."""

from nas_impl.replication.compare import VERDICTS, compare_replication
from nas_impl.replication.manifest import SCALES, Experiment, Replication, load_replication
from nas_impl.replication.published import PublishedRow, load_published
from nas_impl.replication.regress import Difference, regress

__all__ = ["SCALES", "VERDICTS", "Difference", "Experiment", "PublishedRow", "Replication", "compare_replication",
           "load_published", "load_replication", "regress"]
