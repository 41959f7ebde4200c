# The shared chain of every replication: recipe -> arch (and its architecture metrics) -> train ->
# evaluate. An experiment's arch.yaml is its reference spec (archs/) or the shape its search derived
# (search.smk writes search/<search>/seed<k>/arch.yaml, arch-<target>.yaml and search.json).


rule recipe:
    input:
        f"{REPO}/replications/{{paper}}/replication.yaml",
    output:
        f"{RESULTS}/{{paper}}/recipes/{{recipe}}.yaml",
    log:
        f"{RESULTS}/logs/{{paper}}/recipe/{{recipe}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/recipe/{{recipe}}.tsv"
    params:
        replication=replication_dir,
        overrides=recipe_overrides,
    conda:
        CONDA_ENV
    shell:
        "nasrepro recipe --replication {params.replication} --name {wildcards.recipe} "
        f"--scale {SCALE} {{params.overrides}} --out {{output}} > {{log}} 2>&1"


rule search_recipe:
    input:
        f"{REPO}/replications/{{paper}}/replication.yaml",
    output:
        f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
    log:
        f"{RESULTS}/logs/{{paper}}/search_recipe/{{search}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/search_recipe/{{search}}.tsv"
    params:
        replication=replication_dir,
        overrides=search_recipe_overrides,
    conda:
        CONDA_ENV
    shell:
        "nasrepro recipe --replication {params.replication} --search {wildcards.search} "
        f"--scale {SCALE} {{params.overrides}} --out {{output}} > {{log}} 2>&1"


# Experiments with a reference spec (archs/): one job per paper and seed writes every run's arch.yaml
# and arch_metrics.json (torch is imported once, each distinct spec is counted once). Per seed, so
# that adding seeds leaves the finished ones' files, and what was trained on them, untouched.
for _paper in PAPERS:

    rule:
        name:
            f"reference_archs_{_paper}"
        input:
            manifest=f"{REPO}/replications/{_paper}/replication.yaml",
            specs=PLAN.reference_specs(_paper),
        output:
            PLAN.reference_arch_files(_paper),
        log:
            f"{RESULTS}/logs/{_paper}/reference_archs/seed{{seed}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/{_paper}/reference_archs/seed{{seed}}.tsv"
        params:
            replication=lambda wildcards, input: Path(input.manifest).parent,
            results=lambda wildcards, output: Path(output[0]).parents[2],  # <results>/<experiment>/seed<k>/arch.yaml
            experiments=" ".join(PLAN.reference_experiments(_paper)),
        resources:
            mem_mb=4000,
            runtime=10,
        conda:
            CONDA_ENV
        shell:
            "OMP_NUM_THREADS=1 nasrepro archs --replication {params.replication} --results {params.results} "
            "--experiment {params.experiments} --seed {wildcards.seed} > {log} 2>&1"


rule measure_latency:
    # The latency of an experiment claiming one on a kind of device (ProxylessNAS Table 3), measured
    # on this run's device: batch 1 on a CPU, 8 on a GPU, the paper's conventions.
    input:
        f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/arch.yaml",
    output:
        f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/latency.json",
    log:
        f"{RESULTS}/logs/{{paper}}/measure_latency/{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/measure_latency/{{experiment}}-seed{{seed}}.tsv"
    params:
        device=config["device"],
        threads=THREADS,
    threads: train_threads
    resources:
        gpu=experiment_resource("gpu"),
        mem_mb=4000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={params.threads} nasrepro metrics {input} --latency --device {params.device} "
        "--out {output} > {log} 2>&1"


rule searched_arch:
    # The shape a search derived for an experiment (its arch.yaml, or one target of its search.json),
    # with the head of the paper's dataset, and its architecture metrics.
    input:
        manifest=f"{REPO}/replications/{{paper}}/replication.yaml",
        spec=searched_arch_source,
    output:
        arch=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/arch.yaml",
        metrics=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/arch_metrics.json",
    wildcard_constraints:
        experiment=SEARCHED_EXPERIMENTS,
    log:
        f"{RESULTS}/logs/{{paper}}/searched_arch/{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/searched_arch/{{experiment}}-seed{{seed}}.tsv"
    params:
        replication=replication_dir,
    resources:
        mem_mb=4000,
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS=1 nasrepro arch --replication {params.replication} --experiment {wildcards.experiment} "
        "--searched {input.spec} --out {output.arch} --metrics-out {output.metrics} > {log} 2>&1"


rule train:
    # Declared outputs are what a finished run leaves: metrics.json (written last, only when training
    # finished: the completion marker evaluate and KD students wait for) and train_log.csv.
    # checkpoint.pt is not declared, so Snakemake never deletes it: a killed or preempted job, rerun,
    # continues from its last complete epoch (--resume); the resume guard removes it first when the
    # job's inputs or settings changed.
    input:
        arch=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/arch.yaml",
        recipe=experiment_recipe,
        data=data_stamp,
        teacher=teacher_metrics,
    output:
        metrics=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/metrics.json",
        log_csv=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/train_log.csv",
    log:
        f"{RESULTS}/logs/{{paper}}/train/{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/train/{{experiment}}-seed{{seed}}.tsv"
    params:
        guard=train_guard,
        dataset=run_dataset,
        out=run_dir,
        teacher=teacher_flag,
        data_root=config["data_root"],
        device=config["device"],
        threads=THREADS,
        launcher=train_launcher,
        compile="--compile" if config["compile"] else "",
    threads: train_threads
    resources:
        gpu=experiment_resource("gpu"),
        mem_mb=experiment_resource("mem_mb"),
        runtime=experiment_resource("runtime"),
    conda:
        CONDA_ENV
    shell:
        "{params.guard} > {log} 2>&1 && "
        "OMP_NUM_THREADS={params.threads} {params.launcher} train --arch {input.arch} --recipe {input.recipe} "
        "--dataset {params.dataset} --data-root {params.data_root} --out {params.out} "
        "--seed {wildcards.seed} --device {params.device} --threads {params.threads} {params.teacher} "
        "{params.compile} --resume >> {log} 2>&1"


rule evaluate:
    input:
        metrics=f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/metrics.json",  # the finished run
        data=data_stamp,
    output:
        f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/eval.json",
    log:
        f"{RESULTS}/logs/{{paper}}/evaluate/{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/evaluate/{{experiment}}-seed{{seed}}.tsv"
    params:
        checkpoint=run_checkpoint,
        data_root=config["data_root"],
        device=config["device"],
        threads=THREADS,
    threads: train_threads
    resources:
        gpu=experiment_resource("gpu"),
        mem_mb=experiment_resource("mem_mb"),
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={params.threads} nasrepro evaluate --checkpoint {params.checkpoint} "
        "--data-root {params.data_root} --device {params.device} --threads {params.threads} "
        "--out {output} > {log} 2>&1"
