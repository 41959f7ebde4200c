# TAS: search the width and depth of an unpruned CIFAR ResNet under a MACs target. The searched
# shape (search/<search>/seed<k>/arch.yaml) is retrained by the shared chain (train.smk), with KD
# from the experiment's teacher and without; see replications/tas/README.md.
# search_checkpoint.pt (written every epoch) is not a declared output, so a killed search, rerun,
# resumes from its last complete epoch; the resume guard removes it when inputs or settings changed.


rule tas_search:
    input:
        base=search_base_arch,
        recipe=f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
        data=search_data_stamp,
    output:
        arch=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/arch.yaml",
        log_csv=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/search_log.csv",
        summary=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/search.json",
    wildcard_constraints:
        paper="tas",
    log:
        f"{RESULTS}/logs/{{paper}}/search/{{search}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/search/{{search}}-seed{{seed}}.tsv"
    params:
        guard=search_guard,
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
        "OMP_NUM_THREADS={params.threads} nasrepro search --method {params.method} --arch {input.base} "
        "--recipe {input.recipe} --dataset {params.dataset} --data-root {params.data_root} "
        "--out {params.out} --seed {wildcards.seed} --device {params.device} --threads {params.threads} "
        "--resume >> {log} 2>&1"
