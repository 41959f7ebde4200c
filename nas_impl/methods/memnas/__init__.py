"""MemNAS (Liu et al., CVPR 2020): grow-and-trim search with a memory-aware reward. Built so far: the
reward (`reward.py`) and a round's grow/trim candidates (`candidates.py`); the search method is not
registered yet (nas_impl/methods/__init__.py)."""
