# The README's two commands are `make demo` and `make test`; both set themselves up.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test lint typecheck bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) examples/demo.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest -q -ra --durations=15 tests $(wildcard integrations/*/tests)

bench: setup
	$(PY) benchmarks/bench_embed.py

clean:
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
