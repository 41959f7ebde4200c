"""Seeds derived from (purpose, seed, epoch): how every random stream of a run is keyed.

Hashing keeps nearby pairs unrelated and gives each purpose (data order, dropout, ...) its own
stream, so epoch k of a run draws the same numbers whether or not the run was resumed.
"""

from __future__ import annotations

import hashlib


def derive_seed(purpose: str, seed: int, epoch: int) -> int:
    """A 63-bit seed for one purpose at one epoch of one run."""
    digest = hashlib.sha256(f"nasrepro-{purpose}:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
