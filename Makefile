# `make demo`: tiny CPU training run. `make test`: the test suite. `make lint`: ruff (lint +
# format check) and mypy on worldr1_core (configured in pyproject.toml). All create/reuse .venv.
.PHONY: venv demo test test-fast lint

venv:
	@bash tools/setup_venv.sh

demo: venv
	.venv/bin/worldr1 train configs/tiny_cpu.toml

test: venv
	@bash tools/run_tests.sh

test-fast: venv
	@bash tools/run_tests.sh -m "not slow"

lint: venv
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
