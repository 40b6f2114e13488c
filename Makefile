# Set-up and the two commands of the README's quick start.
#   make devnet  — set up, then settle 20 blocks on the embedded default (no server to install)
#   make test    — set up, then lint, type-check and run the whole test suite
VENV   := .venv
BIN    := $(VENV)/bin
PYTHON ?= python3

.PHONY: setup postgres-server chromium devnet test test-deep lint typecheck pytest bench clean

setup: $(VENV)/.installed tools/node_modules/.installed postgres-server chromium

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'uv>=0.9'
	$(BIN)/uv pip install -q --python $(BIN)/python --compile-bytecode -e '.[test]'
	touch $@

# Local L1 tooling (anvil, solc) from the npm registry, pinned by tools/package-lock.json.
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund
	touch $@

# PostgreSQL server binaries (initdb, pg_ctl) for the PostgreSQL backend's tests, which start a throwaway
# cluster of their own: Debian's package when they are missing and we may install it; silent when present.
postgres-server:
	@if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql; \
	else \
		echo "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL's server package" \
			"(Debian/Ubuntu: sudo apt-get install postgresql), or the PostgreSQL tests are skipped"; \
	fi

# Chromium for the dashboard's browser tests (driven by the playwright package, which downloads nothing:
# it is pointed at this binary): Debian's package when it is missing and we may install it; silent when present.
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
		echo "Chromium not found at /usr/bin/chromium: install it (Debian/Ubuntu: sudo apt-get install chromium)," \
			"or the dashboard's browser tests are skipped"; \
	fi

devnet: setup
	$(BIN)/orchestrator devnet --blocks 20

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# Bytecode written even where the environment says not to (PYTHONDONTWRITEBYTECODE=1 on some machines): without
# it each of the four workers, and every `orchestrator` process the tests start, compiles the package again
# (collection 12 s of CPU a worker instead of 5.5).
pytest: setup
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q src
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -q -n 4 --dist worksteal --durations=25

test: lint typecheck pytest

# The heaviest property tests with their full example count, and the kill -9 chaos tests with their full
# blocks and kills (tests/helpers/depth.py).
test-deep: setup
	MADARA_TEST_DEPTH=deep $(BIN)/pytest -q tests/unit/starknet/test_batching_speed_incremental.py \
		tests/unit/domain/test_batching_property.py tests/e2e/test_chaos.py tests/e2e/test_chaos_l3.py \
		tests/integration/test_batching_crash.py

bench: setup
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
