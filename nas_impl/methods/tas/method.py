"""TAS behind the suite's search-method interface (`nas_impl.methods.SearchMethod`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas_impl.methods import SearchMethod
from nas_impl.methods.tas.loop import TASSearch, search_data, super_net
from nas_impl.methods.tas.recipe import SearchRecipe, search_recipe_from_dict
from nas_impl.training.seeding import seed_everything


def run(base_spec: dict[str, Any], recipe: SearchRecipe, dataset: str, out_dir: str | Path, *, seed: int,
        device: torch.device, data_root: str | Path | None, resume: bool = False, stop_after: int | None = None,
        record: dict[str, Any] | None = None) -> dict[str, Any]:
    data = search_data(dataset, recipe, seed, device, data_root)
    seed_everything(seed)  # super-network initialisation depends on the seed only
    net = super_net(base_spec, recipe, data.num_classes, data.input_size)
    search = TASSearch(net, recipe, data, out_dir=out_dir, seed=seed, device=device, record=record)
    return search.fit(resume=resume, stop_after=stop_after)


METHOD = SearchMethod("tas", search_recipe_from_dict, run)
