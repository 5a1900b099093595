# clover-pl developer targets. `make help` lists them.
# Everything runs inside .venv, created on first use with torch pinned to the CPU wheel before anything else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= conf/quickstart.yaml

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	$(BIN)/python -c "import torch, sys; v = torch.__version__; sys.exit(0 if v.startswith('2.13.0') else f'torch {v} is not the pinned 2.13.0')"
	@! $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia-' || { echo "nvidia-* packages were pulled in: torch pin broken"; exit 1; }
	touch $(STAMP)

install: $(STAMP) ## create .venv: torch 2.13.0 (CPU) first, then clover-pl with dev extras

lint: $(STAMP) ## ruff check + format check + mypy over src/ (cached in .mypy_cache: seconds after the first run)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(STAMP) ## ruff fix + format
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

test: $(STAMP) ## lint, then the default test suite (no slow, gpu or network tests)
	$(MAKE) lint
	$(BIN)/pytest

# A hung test must fail the run with its output, not run into CI's own limit: the whole suite gets TEST_LIMIT seconds.
TEST_LIMIT ?= 3600

test-all: $(STAMP) ## lint, then every test that runs without a GPU or network (what CI runs)
	$(MAKE) lint
	timeout -k 30 $(TEST_LIMIT) $(BIN)/pytest -m "not gpu and not network"

test-gpu: $(STAMP) ## the GPU tests (needs CUDA)
	$(BIN)/pytest -m gpu

DATA ?= data/synthetic

$(DATA)/manifest.json: | $(STAMP)
	$(BIN)/clover-pl prepare synthetic --out $(DATA)

quickstart: $(STAMP) $(DATA)/manifest.json ## the main job: render the synthetic data, pretrain tiny Clover on CPU (~4 min)
	CLOVER_DATA=$(DATA) $(BIN)/clover-pl fit --config conf/quickstart.yaml

QUICKSTART_RUN ?= outputs/quickstart

$(DATA)/retrieval/manifest.json: $(DATA)/manifest.json
	$(BIN)/clover-pl prepare synthetic_retrieval --synthetic $(DATA)

$(DATA)/videoqa/open_ended/manifest.json: $(DATA)/manifest.json
	$(BIN)/clover-pl prepare synthetic_qa --synthetic $(DATA)

SYNTHETIC_BENCHMARKS := $(DATA)/retrieval/manifest.json $(DATA)/videoqa/open_ended/manifest.json

sweep-synthetic: $(STAMP) $(SYNTHETIC_BENCHMARKS) ## evaluate every quickstart checkpoint on the synthetic benchmarks (after `make quickstart`)
	@test -d $(QUICKSTART_RUN)/checkpoints || { echo "no $(QUICKSTART_RUN)/checkpoints: run make quickstart first"; exit 1; }
	CLOVER_DATA=$(DATA) CLOVER_RUN=$(QUICKSTART_RUN) $(BIN)/clover-pl sweep --config conf/sweeps/synthetic.yaml

sweep-ablations: $(STAMP) $(SYNTHETIC_BENCHMARKS) ## pretrain Clover and its ablations (3 seeds) on the synthetic data, then evaluate (hours)
	CLOVER_DATA=$(DATA) $(BIN)/clover-pl sweep --config conf/sweeps/ablations_synthetic.yaml

STUDY ?= conf/sweeps/objective_study_long.yaml

study-objective: $(STAMP) $(SYNTHETIC_BENCHMARKS) ## the objective study (STUDY=...): arms x 5 seeds, seed by seed, then its table and figure
	CLOVER_DATA=$(DATA) $(BIN)/python -m clover_pl.sweeps.study run --config $(STUDY)
	CLOVER_DATA=$(DATA) $(BIN)/python -m clover_pl.sweeps.study report --config $(STUDY)

bench: $(STAMP) ## backbone fwd+bwd, pretraining step (bare loop vs Lightning), speed levers + MFU; see bench/RESULTS.md
	$(BIN)/python bench/backbone.py
	$(BIN)/python bench/pretrain_step.py
	$(BIN)/python bench/levers.py

bench-gpu: $(STAMP) ## the GPU figures (needs CUDA): levers + MFU at base size, largest batch per GPU; see bench/RESULTS.md
	$(BIN)/python bench/levers.py --device cuda --preset base --frames 8 --size 224
	$(BIN)/python bench/max_batch.py
	$(BIN)/python bench/backbone.py --device cuda
	$(BIN)/python bench/gpu_decode.py
	$(BIN)/python bench/loader.py --sources b --paths lean --workers 8 16 --rounds 1 --samples 512 --shards 16 --batch 32

bench-loader: $(STAMP) ## data path: clips/s per core, today's vs the lean path, WebVid-like vs --preset train; see bench/RESULTS.md
	$(BIN)/python bench/loader.py --profile

print-config: $(STAMP) ## print the resolved config: make print-config CONFIG=conf/...
	$(BIN)/clover-pl fit --config $(CONFIG) --print_config

wheel: $(STAMP) ## build the wheel into dist/ (offline; conf/ and the dataset cards ship inside it)
	$(BIN)/python -m pip wheel --no-deps --no-build-isolation -w dist .
	rm -rf build

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache lightning_logs outputs
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install lint format test test-all test-gpu quickstart sweep-synthetic sweep-ablations study-objective bench bench-gpu bench-loader print-config wheel clean
