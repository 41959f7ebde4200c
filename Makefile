# The README's commands. Each target bootstraps what it needs and skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CORES ?= 2
FMNIST_DEBIAN := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
FMNIST_LOCAL := data/fashion-mnist/train-images-idx3-ubyte.gz

# glibc malloc otherwise hands large activation buffers back to the OS after every step and
# page-faults them in again on the next, which can double CPU step times (README, "CPU performance").
export MALLOC_MMAP_THRESHOLD_ := 33554432
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 1073741824
# Real-data tests and validation runs read ../shared/data (CIFAR-10 copy, Penn Treebank).
export NASREPRO_SHARED ?= $(abspath ../shared)

.PHONY: run test bench lint validate validate-tas validate-autoslim validate-proxylessnas validate-autoshrink validate-memnas regress reference screenshot venv data lock clean

run: venv data
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default
	@echo "Results: results/smoke/report.html, results/smoke/scorecard.csv, results/smoke/<paper>/tables/ and plots/"

test: venv data
	$(PY) -m pytest -q --benchmark-skip

bench: venv data
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,max,rounds -q -s

lint: venv
	$(VENV)/bin/snakemake --lint

# ResNet-20 on the real CIFAR-10 copy in ../shared/data through the workflow, at reduced scale with
# 15 epochs (about 20 minutes on 2 CPU cores). The copy is JPEG-decoded, so accuracy is reported,
# not judged against the paper ("not comparable").
VALIDATE_CONFIG := scale=reduced papers='[baselines]' experiments='[resnet20-cifar10]' data_root=$(NASREPRO_SHARED)/data \
  dataset_substitutes='{cifar10: cifar10-jpg}' recipe_overrides='{epochs: 15}' device=cpu threads=$(CORES)
validate: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_CONFIG)
	@echo "Validation results: results/reduced/ (report.html, baselines/resnet20-cifar10/seed0/)"

# TAS's chain on the same copy at reduced scale: teacher ResNet-20 (15 epochs), a 10-epoch search at
# target ratio 0.55, the searched shape retrained with and without KD (15 epochs each); about
# 1 h 45 min on 2 CPU cores.
VALIDATE_TAS_CONFIG := scale=reduced papers='[tas]' \
  experiments='[searched-C010-ResNet20-kd,searched-C010-ResNet20-nokd,C010-ResNet20]' \
  data_root=$(NASREPRO_SHARED)/data dataset_substitutes='{cifar10: cifar10-jpg}' device=cpu threads=$(CORES)
validate-tas: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_TAS_CONFIG)
	@echo "Validation results: results/reduced/tas/ (tables/table3-cifar10.csv, search/tas-C010-ResNet20/seed0/)"

# AutoSlim's chain on the CIFAR-10 copy: slimmable MobileNetV2-CIFAR x0.35 (3 epochs), greedy slimming
# to 0.5x its MACs, then the slimmed and the default-width network retrained with one recipe (10 epochs).
# About 2 h on 2 CPU cores.
VALIDATE_AUTOSLIM_CONFIG := scale=reduced papers='[autoslim]' experiments='[AutoSlim-MBv2x0.35-C10-0.5x]' \
  data_root=$(NASREPRO_SHARED)/data dataset_substitutes='{cifar10: cifar10-jpg}' device=cpu threads=$(CORES)
validate-autoslim: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_AUTOSLIM_CONFIG)
	@echo "Validation results: results/reduced/autoslim/ (search/autoslim-MBv2x0.35-C10/seed0/, */seed0/eval.json)"

# ProxylessNAS's chain on the CIFAR-10 copy: the latency lookup table of the default (mobile) space
# at 32 px measured on this CPU, a search on 12,000 images (2 warm-up + 4 joint epochs, mul#log
# latency loss), the derived net retrained 5 epochs on 20,000 images. Several hours on 2 CPU cores;
# rerun the same command to resume after an interruption.
VALIDATE_PROXYLESS_CONFIG := scale=reduced papers='[proxylessnas]' experiments='[Proxyless-mobile-C10]' \
  data_root=$(NASREPRO_SHARED)/data dataset_substitutes='{cifar10: cifar10-jpg}' device=cpu threads=$(CORES)
validate-proxylessnas: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_PROXYLESS_CONFIG)
	@echo "Validation results: results/reduced/proxylessnas/ (search/proxyless-mobile-C10/seed0/, Proxyless-mobile-C10/seed0/eval.json)"

# AutoShrink on the copies in ../shared/data: ShrinkRNN as released for 1 epoch of
# the official regime (SGD lr 20, variable BPTT, TAR, clip 0.25; about 40 minutes on 2 CPU cores) and the LSTM
# baseline for 2 epochs (about 40 minutes) on Penn Treebank, test perplexity of the kept weights; the CNN shrinking
# search for a few steps on the CIFAR-10 copy and its cell retrained 5 epochs; the RNN shrinking search for 3 steps
# on the official PTB proxy and its cell retrained at ShrinkRNN's size for 1 epoch. EXPERIMENTS narrows it, e.g.
# `make validate-autoshrink EXPERIMENTS=[ShrinkRNN-PTB]`.
VALIDATE_AUTOSHRINK_CONFIG := scale=reduced papers='[autoshrink]' data_root=$(NASREPRO_SHARED)/data \
  dataset_substitutes='{cifar10: cifar10-jpg}' device=cpu threads=$(CORES)
validate-autoshrink: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_AUTOSHRINK_CONFIG) \
	  $(if $(EXPERIMENTS),experiments='$(EXPERIMENTS)')
	@echo "Validation results: results/reduced/autoshrink/ (ShrinkRNN/seed0/, LSTM-medium/seed0/, ShrinkRNN-PTB/seed0/: train_log.csv, metrics.json, eval.json; search/*/seed0/search_log.csv)"

# MemNAS's grow-and-trim search on the CIFAR-10 copy at width 16: 16 of round 0's one-cell nets, then 2 rounds
# whose controller-ranked top 4 and 4 random audit candidates are trained (3 epochs on 8,000 images each, scored
# on 2,000 held-out ones), and the last round's best retrained 5 epochs on 10,000 images. About 40 minutes on
# 2 CPU cores.
VALIDATE_MEMNAS_CONFIG := scale=reduced papers='[memnas]' experiments='[MemNAS-C10]' data_root=$(NASREPRO_SHARED)/data \
  dataset_substitutes='{cifar10: cifar10-jpg}' device=cpu threads=$(CORES)
validate-memnas: venv
	$(VENV)/bin/snakemake --cores $(CORES) --workflow-profile workflows/profiles/default --config $(VALIDATE_MEMNAS_CONFIG)
	@echo "Validation results: results/reduced/memnas/ (search/memnas-C10/seed0/search_log.csv, search.json; MemNAS-C10/seed0/eval.json)"

regress: venv
	$(VENV)/bin/snakemake regress --cores $(CORES) --workflow-profile workflows/profiles/default

# Regenerate the committed smoke reference that `make regress` checks against: the smoke run with
# three seeds (seed 0 is reused from `make run`), whose spread sets regress's tolerances. Commit
# results/reference/smoke afterwards. About three times `make run`.
REFERENCE_SEEDS := [0,1,2]
reference: venv data
	$(VENV)/bin/snakemake reference --cores $(CORES) --workflow-profile workflows/profiles/default --config seeds='$(REFERENCE_SEEDS)' $(if $(PAPERS),papers='$(PAPERS)')

# The smoke report as a browser renders it: headless Chromium (Debian's `chromium`, installed when
# missing) writes results/smoke/report.png, the top of the page at 1280 px wide.
screenshot:
	@command -v chromium >/dev/null || { if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2400 \
	  --screenshot=results/smoke/report.png file://$(abspath results/smoke/report.html)
	@echo "Screenshot: results/smoke/report.png"

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[test]'
	touch $@

# The offline default dataset: Debian's dataset-fashion-mnist, or the four IDX files in data/fashion-mnist/.
data:
	@if [ -f $(FMNIST_LOCAL) ] || [ -f $(FMNIST_DEBIAN) ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "Fashion-MNIST is missing: install Debian's dataset-fashion-mnist, or put the four IDX .gz files in data/fashion-mnist/" >&2; exit 1; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dataset-fashion-mnist

# Re-pin requirements/constraints.txt from the current environment.
lock: venv
	{ sed -n '1,3p' requirements/constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^nas-repro'; } > requirements/constraints.txt.new
	mv requirements/constraints.txt.new requirements/constraints.txt

clean:
	rm -rf results/smoke .snakemake .pytest_cache .benchmarks
