# AutoSlim: train a slimmable super-network (the default-width network times supernet_width) with
# the sandwich rule, then greedily slim it on held-out training images down to every MACs target.
# Each found shape (search.json's targets) is retrained from scratch by the shared chain
# (train.smk), next to the default-width network trained the same way; see
# replications/autoslim/README.md.
# The super-network stage checkpoints every epoch to search_checkpoint.pt, which is not a declared
# output: a killed stage, rerun, resumes from its last complete epoch (the resume guard removes it
# when the base network, dataset or a recipe key other than the slimming-only ones changed).
# supernet.pt is declared: written once, when the stage finished. The slim stage has no per-step
# state: rerun, it slims supernet.pt again from the start.

from nas_impl.methods.autoslim.recipe import SLIMMING_ONLY


rule autoslim_supernet:
    input:
        base=search_base_arch,
        recipe=f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
        data=search_data_stamp,
    output:
        supernet=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/supernet.pt",
        log_csv=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/supernet_log.csv",
        summary=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/supernet.json",
    wildcard_constraints:
        paper="autoslim",
    log:
        f"{RESULTS}/logs/{{paper}}/supernet/{{search}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/supernet/{{search}}-seed{{seed}}.tsv"
    params:
        # the super-network does not depend on the slimming-only keys: new targets reuse it
        guard=lambda wildcards, input: search_guard(wildcards, input, ignore=SLIMMING_ONLY),
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
        "OMP_NUM_THREADS={params.threads} nasrepro search --method autoslim --stage supernet --arch {input.base} "
        "--recipe {input.recipe} --dataset {params.dataset} --data-root {params.data_root} "
        "--out {params.out} --seed {wildcards.seed} --device {params.device} --threads {params.threads} "
        "--resume >> {log} 2>&1"


rule autoslim_slim:
    input:
        base=search_base_arch,
        recipe=f"{RESULTS}/{{paper}}/search/{{search}}/recipe.yaml",
        supernet=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/supernet.pt",
        data=search_data_stamp,
    output:
        summary=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/search.json",
        arch=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/arch.yaml",
        log_csv=f"{RESULTS}/{{paper}}/search/{{search}}/seed{{seed}}/slim_log.csv",
    wildcard_constraints:
        paper="autoslim",
    log:
        f"{RESULTS}/logs/{{paper}}/slim/{{search}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/slim/{{search}}-seed{{seed}}.tsv"
    params:
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
        "OMP_NUM_THREADS={params.threads} nasrepro search --method autoslim --stage slim --arch {input.base} "
        "--recipe {input.recipe} --dataset {params.dataset} --data-root {params.data_root} "
        "--out {params.out} --seed {wildcards.seed} --device {params.device} --threads {params.threads} "
        "> {log} 2>&1"
