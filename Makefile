# `make demo` runs the main job (a DR drill on a local twin); `make test` runs the whole test suite.
# Both do all the set-up a fresh Debian machine needs (scripts/setup.sh).

.PHONY: setup demo test lint bench chaos

setup:
	./scripts/setup.sh

demo: setup
	uv run drbot drill restore

test: setup
	uv run ruff check .
	uv run pytest -q -n 3 --dist loadgroup

lint: setup
	uv run ruff check .
	uv run ruff format --check .

bench: setup
	uv run python bench/bot_latency.py
	uv run python bench/ssh_fanout.py
	uv run python bench/twin_up_down.py

# The drills under faults, through the real processes: one table of figures, also as JSON under
# chaos/results/ (up to 30 minutes on a 2-core machine).
chaos: setup
	uv run python -m chaos
