# The README's two commands are `make demo` and `make test`; both set themselves up.
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-slow test-fast lint typecheck docs bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) examples/demo.py --qdrant-edge

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup
	$(PY) -m mypy

# Unit and integration tiers (real vLLM engines, real stores and servers), without the slow tests.
test: lint typecheck
	$(PY) -m pytest -q -ra --durations=15 -m "not slow" tests $(wildcard integrations/*/tests)

test-slow: setup
	$(PY) -m pytest -q -ra --durations=15 -m slow tests $(wildcard integrations/*/tests)

# The unit tier only (no engine, no server): run it while you work. Four workers: its tests mostly wait
# (stores starting, stub servers), so more workers than cores still pays.
test-fast: setup
	$(PY) -m pytest -q -ra -n 4 tests/unit $(wildcard integrations/*/tests/unit_tests)

# The documentation site, into site/ (`mkdocs serve` to browse it while writing).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

bench: setup
	$(PY) benchmarks/bench_embed.py

clean:
	rm -rf .demo site .pytest_cache .mypy_cache .ruff_cache
