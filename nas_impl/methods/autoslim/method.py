"""AutoSlim behind the suite's search-method interface (`nas_impl.methods.SearchMethod`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas_impl.methods import SearchMethod
from nas_impl.methods.autoslim.data import slim_data
from nas_impl.methods.autoslim.recipe import SearchRecipe, search_recipe_from_dict
from nas_impl.methods.autoslim.search import STAGES, AutoSlimSearch
from nas_impl.runs import adapt_spec


def run(base_spec: dict[str, Any], recipe: SearchRecipe, dataset: str, out_dir: str | Path, *, seed: int,
        device: torch.device, data_root: str | Path | None, resume: bool = False, stop_after: int | None = None,
        record: dict[str, Any] | None = None, stage: str | None = None) -> dict[str, Any]:
    data = slim_data(dataset, recipe, seed, device, data_root)
    base, _ = adapt_spec(base_spec, data.num_classes, data.input_size[0])
    search = AutoSlimSearch(base, recipe, data, out_dir=out_dir, seed=seed, device=device, record=record)
    if stage in (None, "supernet"):
        if resume and search.supernet_path.exists():
            search.load_supernet()  # refuses a super-network trained with another recipe
            result = {"supernet": str(search.supernet_path), "reused": True}
        else:
            result = search.train_supernet(resume=resume, stop_after=stop_after)
        if stage == "supernet" or "stopped_after_epoch" in result:
            return result
    return search.slim()


METHOD = SearchMethod("autoslim", search_recipe_from_dict, run, stages=STAGES)
