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

# Unit, contract and integration tiers (real vLLM engines, real stores and servers), without the slow tests.
# The unit and contract tiers mostly wait on stores and stub servers, so four workers pay on two cores; the
# integration tier runs one test at a time: its engines use every core.
test: lint typecheck
	$(PY) -m pytest -q -ra -n 4 -m "not slow" tests/unit tests/contract $(wildcard integrations/*/tests/unit_tests)
	$(PY) -m pytest -q -ra --durations=15 -m "not slow" tests/integration $(wildcard integrations/*/tests/integration_tests)

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
