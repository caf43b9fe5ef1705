# One command per task: the same commands humans, hooks and CI run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
BENCHSTAMP := $(VENV)/.installed-bench

.PHONY: up test lint typecheck bench bench-peers bench-console bench-scale clean install dev browser

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools

# The mcp extra: `oshal connector import-mcp` (a README command) needs the MCP SDK.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[mcp]'
	touch $@

$(DEVSTAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(STAMP)

# The bench extra: the peer task queues `make bench` measures beside the platform.
$(BENCHSTAMP): pyproject.toml $(DEVSTAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

install: $(STAMP)
dev: $(DEVSTAMP)

## Start the whole platform (embedded Postgres + Redis, control plane, demo fleet). Ctrl-C stops it.
up: $(STAMP)
	$(VENV)/bin/oshal up $(ARGS)

## Lint, type-check and run the whole suite against real engines (the console's tests drive a real Chromium).
test: $(DEVSTAMP) lint browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEVSTAMP)
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

## Debian's Chromium for the console's browser tests (Playwright drives it; `playwright install` is never run).
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

## Benchmarks against a platform this target starts itself (BENCH_N tickets, default 20000), beside the peers
## (dramatiq, celery, arq) measured first in the same run, with the ratios in the JSON line; then the scale and
## volume runs at smaller sizes than `make bench-scale`'s, to keep the whole under ~15 minutes. bench/node_memory.py:
## the idle RSS and PSS of a single-bot node process and of each node host `oshal up` runs. bench/wakeup.py: what one
## cross-process hop costs on this machine, back to back and after idling (the floor under every round trip).
bench: $(BENCHSTAMP)
	$(PY) bench/wakeup.py
	$(PY) bench/run.py
	$(PY) bench/backtest.py
	$(PY) bench/node_memory.py
	$(MAKE) bench-scale BENCH_SCALE_BOTS=$${BENCH_SCALE_BOTS:-26,100} BENCH_SCALE_TICKETS=$${BENCH_SCALE_TICKETS:-5000} \
	  BENCH_SCALE_FAIR_S=$${BENCH_SCALE_FAIR_S:-6} BENCH_VOLUME_TICKETS=$${BENCH_VOLUME_TICKETS:-200000} \
	  BENCH_VOLUME_REQUESTS=$${BENCH_VOLUME_REQUESTS:-50}

## Scale on one machine: every bot its own process at 6, 26 and 100 bots (BENCH_SCALE_BOTS), then a million tickets in
## the database (BENCH_VOLUME_TICKETS) against a fresh one. See docs/scaling.md.
bench-scale: $(DEVSTAMP)
	$(PY) bench/scale.py
	$(PY) bench/volume.py

## The peer task queues alone (bench/peers.py): dramatiq's throughput, celery's and arq's round trip.
bench-peers: $(BENCHSTAMP)
	$(PY) bench/peers.py

## The console overview alone, with BENCH_CONSOLE_TICKETS tickets (default 100000); part of `make bench` too.
bench-console: $(DEVSTAMP)
	$(PY) bench/console_overview.py

clean:
	rm -rf $(VENV) .oshal .pytest_cache .mypy_cache .ruff_cache .grimp_cache .import_linter_cache
