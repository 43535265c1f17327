# `make demo`: tiny CPU training run. `make test`: the test suite. Both create/reuse .venv.
.PHONY: venv demo test test-fast

venv:
	@bash tools/setup_venv.sh

demo: venv
	.venv/bin/worldr1 train configs/tiny_cpu.toml

test: venv
	@bash tools/run_tests.sh

test-fast: venv
	@bash tools/run_tests.sh -m "not slow"
