# Every search, whatever its method: one job per stage of the method (a method's INFO.stages, see
# nas_impl/methods/interface.py). The last stage (rule search) writes search.json, arch.yaml and one
# arch-<target>.yaml per target, which the shared chain (train.smk) retrains; an earlier stage (rule
# search_stage, e.g. AutoSlim's supernet) writes <stage>.json, which the next stage waits for.
# A stage that checkpoints every epoch (search_checkpoint.pt, not a declared output) resumes from its
# last complete epoch when rerun after a kill; its resume guard removes the checkpoint when the base
# network, the dataset or a recipe key the stage depends on changed. The methods' own notes:
# replications/<paper>/README.md.


rule search:
    input:
        base=search_base_arch,
        recipe=f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
        data=search_data_stamp,
        previous=stage_inputs(final_stage),
    output:
        summary=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/search.json",
        arch=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/arch.yaml",
    log:
        f"{RESULTS}/logs/{{paper}}/search/{{search}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/search/{{search}}-seed{{seed}}.tsv"
    params:
        guard=lambda wildcards, input: stage_guard(wildcards, input, final_stage(wildcards)),
        stage=lambda wildcards: final_stage(wildcards).name,
        method=search_method,
        dataset=search_dataset,
        out=search_dir,
        data_root=config["data_root"],
        device=config["device"],
        threads=THREADS,
    threads: train_threads
    resources:
        gpu=search_resource("gpu"),
        mem_mb=search_resource("mem_mb"),
        runtime=search_resource("runtime"),
    conda:
        CONDA_ENV
    shell:
        "{params.guard} > {log} 2>&1 && "
        "OMP_NUM_THREADS={params.threads} nasrepro search --method {params.method} --stage {params.stage} "
        "--arch {input.base} --recipe {input.recipe} --dataset {params.dataset} --data-root {params.data_root} "
        "--out {params.out} --seed {wildcards.seed} --device {params.device} --threads {params.threads} "
        "--resume >> {log} 2>&1"


rule search_stage:
    input:
        base=search_base_arch,
        recipe=f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
        data=search_data_stamp,
        previous=stage_inputs(earlier_stage),
    output:
        summary=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/{{stage}}.json",
    wildcard_constraints:
        stage=EARLIER_STAGES,
    log:
        f"{RESULTS}/logs/{{paper}}/{{stage}}/{{search}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/{{stage}}/{{search}}-seed{{seed}}.tsv"
    params:
        guard=lambda wildcards, input: stage_guard(wildcards, input, earlier_stage(wildcards)),
        method=search_method,
        dataset=search_dataset,
        out=search_dir,
        data_root=config["data_root"],
        device=config["device"],
        threads=THREADS,
    threads: train_threads
    resources:
        gpu=search_resource("gpu"),
        mem_mb=search_resource("mem_mb"),
        runtime=search_resource("runtime"),
    conda:
        CONDA_ENV
    shell:
        "{params.guard} > {log} 2>&1 && "
        "OMP_NUM_THREADS={params.threads} nasrepro search --method {params.method} --stage {wildcards.stage} "
        "--arch {input.base} --recipe {input.recipe} --dataset {params.dataset} --data-root {params.data_root} "
        "--out {params.out} --seed {wildcards.seed} --device {params.device} --threads {params.threads} "
        "--resume >> {log} 2>&1"
