# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser stack demo test unit lint bench bench-backpressure bench-puts soak down clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

stack: install
	$(BIN)/movingdata stack up

demo: stack
	$(BIN)/movingdata demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

# The dashboard's browser test drives Debian's Chromium (Playwright downloads no browser here).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: lint browser stack
	$(BIN)/pytest -q -p no:cacheprovider

bench: stack
	$(BIN)/python -m bench

bench-backpressure: stack
	$(BIN)/python -m bench.backpressure

bench-puts: stack
	$(BIN)/python -m bench.puts

soak: stack
	$(BIN)/python -m bench.soak

down:
	test ! -x $(BIN)/movingdata || $(BIN)/movingdata stack down

clean: down
	rm -rf .movingdata
