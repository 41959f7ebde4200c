"""What a workflow run does, as plain Python: which experiments, seeds, datasets and files, for the
replications selected by the config at one scale. The `.smk` files hold only rules and call this
(unit-tested here, not only through dry runs); it imports neither torch nor Snakemake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nas_impl.methods import method_info
from nas_impl.methods.interface import Stage
from nas_impl.replication.manifest import Replication
from nas_impl.replication.published import LATENCY_ON

ARCH_FILES = ("arch.yaml", "arch_metrics.json")


@dataclass(frozen=True)
class RunPlan:
    replications: Mapping[str, Replication]  # the selected papers, by name
    scale: str
    only: tuple[str, ...] = ()  # config `experiments`: narrow to these (their teachers and baselines come along)
    seed_override: tuple[int, ...] = ()  # config `seeds`
    substitutes: Mapping[str, str] = field(default_factory=dict)  # config `dataset_substitutes`

    @classmethod
    def from_config(cls, replications: Mapping[str, Replication], config: Mapping[str, Any]) -> RunPlan:
        return cls(dict(replications), config["scale"], tuple(config.get("experiments") or ()),
                   tuple(int(s) for s in config.get("seeds") or ()), dict(config.get("dataset_substitutes") or {}))

    @property
    def results(self) -> str:
        return f"results/{self.scale}"

    # -- experiments and seeds --------------------------------------------------------------------
    def experiments(self, paper: str) -> list[str]:
        """The experiments run at this scale, in manifest order, with the teachers and baselines they need."""
        rep = self.replications[paper]
        chosen = [e for e in rep.experiments_at(self.scale) if not self.only or e in self.only]
        needed = {other for e in chosen for other in (rep.experiments[e].teacher, rep.experiments[e].baseline)
                  if other}
        return [e for e in rep.experiments if e in set(chosen) | needed]

    def trained(self, paper: str, experiment: str) -> bool:
        return self.replications[paper].experiments[experiment].trained_at(self.scale)

    def seeds(self, paper: str) -> list[int]:
        return list(self.seed_override) or list(self.replications[paper].seeds[self.scale])

    def reference_experiments(self, paper: str) -> list[str]:
        """Experiments whose architecture is a reference spec (archs/), not a searched shape."""
        return [e for e in self.experiments(paper) if self.replications[paper].experiments[e].search is None]

    def searched_experiments(self) -> list[str]:
        """Every experiment (of any selected paper) whose architecture a search derives."""
        return [name for rep in self.replications.values() for name, e in rep.experiments.items() if e.search]

    # -- datasets ---------------------------------------------------------------------------------
    def substitute(self, dataset: str) -> str:
        return self.substitutes.get(dataset, dataset)

    def run_dataset(self, paper: str, experiment: str) -> str:
        """The dataset an experiment trains on at this scale (after substitutes)."""
        return self.substitute(self.replications[paper].run_dataset(experiment, self.scale))

    def search_dataset(self, paper: str, search: str) -> str:
        return self.substitute(self.replications[paper].search_run_dataset(search, self.scale))

    # -- resources -------------------------------------------------------------------------------
    def experiment_resources(self, paper: str, experiment: str, defaults: Mapping[str, int]) -> dict[str, int]:
        """What a training or evaluation job of this experiment needs: the scale's defaults, then the
        manifest's `resources` of the experiment at this scale."""
        own = self.replications[paper].experiments[experiment].resources.get(self.scale, {})
        return {**defaults, **own}

    def search_resources(self, paper: str, search: str, defaults: Mapping[str, int]) -> dict[str, int]:
        own = self.replications[paper].searches[search].resources.get(self.scale, {})
        return {**defaults, **own}

    # -- files ------------------------------------------------------------------------------------
    def run_dir(self, paper: str, experiment: str, seed: int | str) -> str:
        return f"{self.results}/{paper}/{experiment}/seed{seed}"

    def search_dir(self, paper: str, search: str, seed: int | str) -> str:
        return f"{self.results}/{paper}/search/{search}/seed{seed}"

    # -- search stages (each a job: the method's `INFO.stages`) -------------------------------------
    def search_stages(self, paper: str, search: str) -> tuple[Stage, ...]:
        return method_info(self.replications[paper].searches[search].method).stages

    def final_stage(self, paper: str, search: str) -> Stage:
        """The stage that writes search.json and the searched shapes."""
        return self.search_stages(paper, search)[-1]

    def earlier_stage(self, paper: str, search: str, name: str) -> Stage:
        earlier = {stage.name: stage for stage in self.search_stages(paper, search)[:-1]}
        if name not in earlier:
            raise KeyError(f"search '{search}' of {paper} has no earlier stage '{name}'")
        return earlier[name]

    def stage_inputs(self, paper: str, search: str, seed: int | str, name: str) -> list[str]:
        """What a stage reads besides the search's inputs: the summary of the stage before it."""
        names = [stage.name for stage in self.search_stages(paper, search)]
        index = names.index(name)
        if index == 0:
            return []
        return [f"{self.search_dir(paper, search, seed)}/{self.search_stages(paper, search)[index - 1].summary}"]

    def earlier_stage_names(self) -> list[str]:
        """The stages before the last of every planned search's method (AutoSlim: supernet)."""
        return sorted({stage.name for paper, rep in self.replications.items() for search in rep.searches
                       for stage in self.search_stages(paper, search)[:-1]})

    def searched_arch_source(self, paper: str, experiment: str, seed: int | str) -> str:
        """The shape a searched experiment's search derived (same seed): its arch.yaml, or the
        search.json that holds one shape per target (AutoSlim)."""
        exp = self.replications[paper].experiments[experiment]
        searched = "arch.yaml" if exp.search_target is None else "search.json"
        return f"{self.search_dir(paper, exp.search, seed)}/{searched}"

    def reference_specs(self, paper: str) -> list[str]:
        rep = self.replications[paper]
        return sorted({str(rep.arch_path(e)) for e in self.reference_experiments(paper)})

    def reference_arch_files(self, paper: str) -> list[str]:
        """The outputs of one seed's reference_archs job (`{seed}` stays a wildcard)."""
        return [f"{self.results}/{paper}/{e}/seed{{seed}}/{name}" for e in self.reference_experiments(paper)
                for name in ARCH_FILES]

    def teacher_dir(self, paper: str, experiment: str, seed: int | str) -> str | None:
        """The KD teacher's run folder (the teacher experiment, same seed), or None."""
        teacher = self.replications[paper].experiments[experiment].teacher
        return None if teacher is None else self.run_dir(paper, teacher, seed)

    def run_files(self, paper: str, name: str) -> list[str]:
        """`name` of every run; eval.json only of the experiments trained at this scale."""
        chosen = [e for e in self.experiments(paper) if name != "eval.json" or self.trained(paper, e)]
        return [f"{self.run_dir(paper, e, s)}/{name}" for e in chosen for s in self.seeds(paper)]

    def timed_experiments(self, paper: str) -> list[str]:
        """Experiments whose latency is measured where the run is (the `measure_latency` rule): those
        claiming a latency on a kind of device (ProxylessNAS Table 3) and the latency-targeted ones."""
        timed = set(self.latency_claiming_experiments(paper)) | set(self.latency_targeted_experiments(paper))
        return [e for e in self.experiments(paper) if e in timed]

    def latency_claiming_experiments(self, paper: str) -> list[str]:
        """Experiments claiming a latency on a kind of device (ProxylessNAS Table 3): what compare reads."""
        rep = self.replications[paper]
        timed = {(row.table, row.model) for row in rep.published if row.metric in LATENCY_ON}
        return [e for e in self.experiments(paper)
                if any((claim.table, claim.model) in timed for claim in rep.experiments[e].claims)]

    def latency_targeted_experiments(self, paper: str) -> list[str]:
        """Searched experiments whose search aims at a latency (its method's `latency_target`)."""
        rep = self.replications[paper]
        searches = {e: rep.experiments[e].search for e in self.experiments(paper)}
        return [e for e, search in searches.items()
                if search and method_info(rep.searches[search].method).latency_target]

    def latency_target_inputs(self, paper: str) -> list[str]:
        return [f"{self.run_dir(paper, e, s)}/latency.json" for e in self.latency_targeted_experiments(paper)
                for s in self.seeds(paper)]

    def latency_target_tables(self) -> list[str]:
        """latency_targets.csv of every paper with a latency-targeted experiment at this scale."""
        return [f"{self.results}/{paper}/latency_targets.csv" for paper in self.replications
                if self.latency_targeted_experiments(paper)]

    def compare_inputs(self, paper: str) -> list[str]:
        latency = [f"{self.run_dir(paper, e, s)}/latency.json" for e in self.latency_claiming_experiments(paper)
                   for s in self.seeds(paper)]
        return self.run_files(paper, "eval.json") + self.run_files(paper, "arch_metrics.json") + latency

    def tables(self, paper: str) -> list[str]:
        return [f"{self.results}/{paper}/tables/{t}.csv" for t in self.replications[paper].tables]

    def plots(self, paper: str) -> list[str]:
        return [f"{self.results}/{paper}/plots/{t}.png" for t in self.replications[paper].tables]

    def all_tables(self) -> list[str]:
        return [t for paper in self.replications for t in self.tables(paper)]

    def all_plots(self) -> list[str]:
        return [p for paper in self.replications for p in self.plots(paper)]

    def reference_tables(self) -> list[str]:
        """Where `make reference` copies this scale's tables."""
        return [t.replace(self.results, f"results/reference/{self.scale}", 1) for t in self.all_tables()]
