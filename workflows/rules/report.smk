# Published vs reproduced tables, plots, the scorecard and report, and the regression check.


rule compare:
    input:
        f"{REPO}/replications/{{paper}}/published.csv",
        f"{REPO}/replications/{{paper}}/replication.yaml",
        compare_inputs,
    output:
        f"{RESULTS}/{{paper}}/tables/{{table}}.csv",
    log:
        f"{RESULTS}/logs/{{paper}}/compare/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/compare/{{table}}.tsv"
    params:
        replication=replication_dir,
        seeds=lambda wildcards: " ".join(str(s) for s in PLAN.seeds(wildcards.paper)),
    conda:
        CONDA_ENV
    shell:
        "nasrepro compare --replication {params.replication} --results "
        f"{RESULTS}/{{wildcards.paper}} --scale {SCALE} --seeds {{params.seeds}} --table {{wildcards.table}} "
        f"--out-dir {RESULTS}/{{wildcards.paper}}/tables > {{log}} 2>&1"


rule plot:
    input:
        f"{RESULTS}/{{paper}}/tables/{{table}}.csv",
    output:
        f"{RESULTS}/{{paper}}/plots/{{table}}.png",
    log:
        f"{RESULTS}/logs/{{paper}}/plot/{{table}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/plot/{{table}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "nasrepro plot --table {input} --out {output} > {log} 2>&1"


rule latency_targets:
    # Latency-aware searches (ProxylessNAS): each derived net's measured latency beside its target and
    # the lookup table's prediction (nas_impl/replication/latency_targets.py); a report section.
    input:
        f"{REPO}/replications/{{paper}}/replication.yaml",
        latency_target_inputs,
    output:
        f"{RESULTS}/{{paper}}/latency_targets.csv",
    log:
        f"{RESULTS}/logs/{{paper}}/latency_targets/latency_targets.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{paper}}/latency_targets/latency_targets.tsv"
    params:
        replication=replication_dir,
        experiments=lambda wildcards: " ".join(PLAN.latency_targeted_experiments(wildcards.paper)),
        seeds=lambda wildcards: " ".join(str(s) for s in PLAN.seeds(wildcards.paper)),
    conda:
        CONDA_ENV
    shell:
        "nasrepro latency-targets --replication {params.replication} "
        f"--results {RESULTS}/{{wildcards.paper}} --experiments {{params.experiments}} --seeds {{params.seeds}} "
        "--out {output} > {log} 2>&1"


rule report:
    input:
        tables=PLAN.all_tables(),
        plots=PLAN.all_plots(),
        latency_targets=PLAN.latency_target_tables(),
    output:
        scorecard=f"{RESULTS}/scorecard.csv",
        html=f"{RESULTS}/report.html",
    log:
        f"{RESULTS}/logs/report.log",
    benchmark:
        f"{RESULTS}/benchmarks/report/report.tsv"
    conda:
        CONDA_ENV
    shell:
        f"nasrepro report --results {RESULTS} --tables {{input.tables}} --plots {{input.plots}} "
        "--latency-targets {input.latency_targets} --scorecard {output.scorecard} --out {output.html} > {log} 2>&1"


rule regress:
    input:
        f"{RESULTS}/scorecard.csv",
    output:
        f"{RESULTS}/regress.json",
    log:
        f"{RESULTS}/logs/regress.log",
    benchmark:
        f"{RESULTS}/benchmarks/regress/regress.tsv"
    params:
        reference=f"results/reference/{SCALE}",
    conda:
        CONDA_ENV
    shell:
        f"nasrepro regress {RESULTS} {{params.reference}} --out {{output}} > {{log}} 2>&1 "
        "|| {{ cat {log}; exit 1; }}"


rule reference:
    # `make reference`: this scale's tables become the reference `regress` checks against (committed
    # under results/reference/). Run with several seeds: their spread sets regress's tolerances.
    input:
        tables=PLAN.all_tables(),
        scorecard=f"{RESULTS}/scorecard.csv",
    output:
        tables=PLAN.reference_tables(),
        environment=f"results/reference/{SCALE}/environment.csv",
    log:
        f"{RESULTS}/logs/reference.log",
    benchmark:
        f"{RESULTS}/benchmarks/reference/reference.tsv"
    conda:
        CONDA_ENV
    shell:
        f"nasrepro reference --results {RESULTS} --out results/reference/{SCALE} --papers {' '.join(PLAN.replications)} "
        "> {log} 2>&1"
