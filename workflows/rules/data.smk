# Find each dataset, verify its checksums and record a summary; training jobs depend on it.


rule prepare_data:
    output:
        f"{RESULTS}/data/{{dataset}}.json",
    log:
        f"{RESULTS}/logs/data/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/prepare_data/{{dataset}}.tsv"
    params:
        data_root=config["data_root"],
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        CONDA_ENV
    shell:
        "nasrepro prepare-data --dataset {wildcards.dataset} --data-root {params.data_root} "
        "--out {output} > {log} 2>&1"
