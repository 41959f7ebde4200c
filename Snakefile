# nas-repro: data -> (search ->) arch.yaml -> train -> evaluate -> metrics -> compare -> plots -> report.
# `snakemake --cores 2` runs the default (smoke) scale; see README.md and workflows/config.yaml.


include: "workflows/rules/common.smk"
include: "workflows/rules/data.smk"
include: "workflows/rules/train.smk"
include: "workflows/rules/search.smk"
include: "workflows/rules/report.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/report.html",
        f"{RESULTS}/scorecard.csv",
