"""ProxylessNAS behind the suite's search-method interface (`nas_impl.methods.interface`)."""

from __future__ import annotations

import torch

from nas_impl.data import dataset_info
from nas_impl.methods.interface import SearchJob, SearchMethod, SearchResult, Stage, StageResult
from nas_impl.methods.proxylessnas.loop import ProxylessSearch, build_latency_table, search_data, super_net
from nas_impl.methods.proxylessnas.recipe import INFO
from nas_impl.runs import adapt_spec
from nas_impl.training.seeding import seed_everything


class ProxylessNAS(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        settings = job.recipe.proxyless
        if stage.name == "latency":
            # The table depends on the space and the input size only: no data is read.
            info = dataset_info(job.dataset)
            base, _ = adapt_spec(job.base_spec, info.num_classes, info.input_size[0])
            seed_everything(job.seed)
            net = super_net(base, settings, info.input_size[1])
            job.out_dir.mkdir(parents=True, exist_ok=True)
            return StageResult("latency", build_latency_table(net, settings, torch.device(job.device), job.out_dir,
                                                               threads=torch.get_num_threads()))
        data = search_data(job.dataset, job.recipe, job.seed, job.device, job.data_root)
        base, _ = adapt_spec(job.base_spec, data.num_classes, data.input_size[0])
        seed_everything(job.seed)  # super-network initialisation depends on the seed only
        net = super_net(base, settings, data.input_size[1])
        search = ProxylessSearch(net, job.recipe, data, out_dir=job.out_dir, seed=job.seed, device=job.device,
                                 record=job.record)
        return search.fit(resume=job.resume, stop_after=job.stop_after)


METHOD = ProxylessNAS()
