"""TAS behind the suite's search-method interface (`nas_impl.methods.interface`)."""

from __future__ import annotations

from nas_impl.methods.interface import SearchJob, SearchMethod, SearchResult, Stage, StageResult
from nas_impl.methods.tas.loop import TASSearch, search_data, super_net
from nas_impl.methods.tas.recipe import INFO
from nas_impl.training.seeding import seed_everything


class TAS(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        data = search_data(job.dataset, job.recipe, job.seed, job.device, job.data_root)
        seed_everything(job.seed)  # super-network initialisation depends on the seed only
        net = super_net(job.base_spec, job.recipe, data.num_classes, data.input_size)
        search = TASSearch(net, job.recipe, data, out_dir=job.out_dir, seed=job.seed, device=job.device,
                           record=job.record)
        return search.fit(resume=job.resume, stop_after=job.stop_after)


METHOD = TAS()
