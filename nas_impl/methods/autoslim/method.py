"""AutoSlim behind the suite's search-method interface (`nas_impl.methods.interface`)."""

from __future__ import annotations

from nas_impl.methods.autoslim.data import slim_data
from nas_impl.methods.autoslim.recipe import INFO
from nas_impl.methods.autoslim.search import AutoSlimSearch
from nas_impl.methods.interface import SearchJob, SearchMethod, SearchResult, Stage, StageResult
from nas_impl.runs import adapt_spec


class AutoSlim(SearchMethod):
    info = INFO

    def run_stage(self, stage: Stage, job: SearchJob) -> SearchResult | StageResult:
        data = slim_data(job.dataset, job.recipe, job.seed, job.device, job.data_root)
        base, _ = adapt_spec(job.base_spec, data.num_classes, data.input_size[0])
        search = AutoSlimSearch(base, job.recipe, data, out_dir=job.out_dir, seed=job.seed, device=job.device,
                                record=job.record)
        if stage.name == "slim":
            return search.slim()
        if job.resume and search.supernet_path.exists():
            search.load_supernet()  # refuses a super-network trained with another recipe
            return StageResult("supernet", {"supernet": str(search.supernet_path), "reused": True})
        return search.train_supernet(resume=job.resume, stop_after=job.stop_after)


METHOD = AutoSlim()
