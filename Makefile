# Fulcrum — the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench bench-peers clean install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the emulators and the gateway with the example configuration (Ctrl-C stops).
run: $(STAMP)
	$(BIN)/fulcrum demo

## Run the whole test suite (real servers on free ports, the official openai SDK).
test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## Benchmark: direct vs. pass-through proxy vs. Fulcrum (and peers, when installed).
bench: $(STAMP)
	$(BIN)/python -m bench.run

## Install LiteLLM's proxy into its own venv, then benchmark with it in the table.
bench-peers: $(STAMP)
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install --quiet 'litellm[proxy]'
	$(BIN)/python -m bench.run --peers

## Stack candidates: build .venv-candidates (httpx, Starlette, uvicorn, httptools, granian), then
## benchmark the pass-through on those stacks and Fulcrum on asyncio / stdlib json (~5 minutes).
.PHONY: bench-candidates
bench-candidates: $(STAMP)
	$(PYTHON) -m venv .venv-candidates
	echo '*' > .venv-candidates/.gitignore
	.venv-candidates/bin/pip install --quiet -e . httpx starlette uvicorn
	.venv-candidates/bin/pip install --quiet httptools || echo "httptools did not install: uvicorn falls back to h11"
	.venv-candidates/bin/pip install --quiet granian || echo "granian did not install: its row will say unavailable"
	$(BIN)/python -m bench.run --candidates

clean:
	rm -rf $(VENV) .venv-peers .venv-candidates .pytest_cache .mypy_cache .ruff_cache
