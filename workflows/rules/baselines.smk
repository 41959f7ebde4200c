# baselines: the unpruned reference networks. Nothing is searched: each experiment's
# architecture is its reference spec (replications/baselines/archs/), with the paper's head.


rule baselines_arch:
    input:
        manifest=f"{REPO}/replications/{{paper}}/replication.yaml",
        spec=reference_arch,
    output:
        f"{RESULTS}/{{paper}}/{{experiment}}/seed{{seed}}/arch.yaml",
    wildcard_constraints:
        paper="baselines",
    log:
        f"{RESULTS}/logs/{{paper}}/arch/{{experiment}}-seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/arch/{{experiment}}-seed{{seed}}.tsv"
    params:
        replication=replication_dir,
    conda:
        CONDA_ENV
    shell:
        "nasrepro arch --replication {params.replication} --experiment {wildcards.experiment} "
        "--out {output} > {log} 2>&1"
