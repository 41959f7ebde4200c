"""AutoSlim (Yu & Huang, 2019): one-shot search of per-layer channel numbers.

A slimmable super-network (`slimmable.py`) over a family's channel list (`space.py`) is trained
with the sandwich rule (`supernet.py`), then greedily slimmed, one channel group of one layer
at a time, on held-out training images, recording the channel list at each MACs target
(`greedy.py`). The found channel lists are ordinary family specs, retrained from scratch by
the shared training chain. See replications/autoslim/README.md.
"""
