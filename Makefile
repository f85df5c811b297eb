# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser rules stack demo test test-compose unit lint image bench bench-backpressure bench-puts bench-scale soak down clean

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
	$(BIN)/hadolint deploy/Dockerfile

# The one image of workers, API and dashboard (deploy/Dockerfile), tagged with the project's version.
IMAGE := movingdata:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	@command -v docker >/dev/null 2>&1 || { \
	  echo "make image: docker is not installed; it builds with: docker build -f deploy/Dockerfile -t $(IMAGE) ."; \
	  exit 1; }
	docker build -f deploy/Dockerfile -t $(IMAGE) .

unit: install
	$(BIN)/pytest tests/unit -q

# promtool from Debian's prometheus package (that binary only, no daemon: apt-get download, then
# dpkg-deb), unless one is installed. Checks the alert rules, runs their unit tests and checks
# the Compose deployment's Prometheus configuration.
TOOLS    := .movingdata/tools
PROMTOOL ?= $(or $(shell command -v promtool),$(TOOLS)/promtool)

$(TOOLS)/promtool:
	mkdir -p $(TOOLS)/apt
	cd $(TOOLS)/apt && rm -f prometheus_*.deb && \
	  { apt-get download -qq prometheus || { apt-get update -qq && apt-get download -qq prometheus; }; }
	dpkg-deb --fsys-tarfile $(TOOLS)/apt/prometheus_*.deb | tar -xO ./usr/bin/promtool > $@.part
	chmod +x $@.part && mv $@.part $@ && rm -f $(TOOLS)/apt/prometheus_*.deb

rules: $(PROMTOOL)
	$(PROMTOOL) check rules deploy/prometheus/alerts.yaml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yaml
	$(PROMTOOL) check config deploy/prometheus/prometheus.yml

# The dashboard's browser test drives Debian's Chromium (Playwright downloads no browser here).
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The Compose deployment started for real, after the rest (tests/deploy/podman/; deploy/README.md):
# Podman from apt, the docker compose plugin built once from the Go module proxy, the images
# built here (stand-ins for the backing services), then a put verified in the three stores, a
# worker killed, --scale replicate=2 and down --volumes. Cold about 10 minutes, warm about 2.
COMPOSE_TEST := tests/deploy/test_compose.py

test: lint browser rules stack
	$(BIN)/pytest -q -p no:cacheprovider --ignore=$(COMPOSE_TEST)
	$(MAKE) test-compose

test-compose: install
	$(BIN)/pytest -q -p no:cacheprovider $(COMPOSE_TEST)

bench: stack
	$(BIN)/python -m bench

bench-backpressure: stack
	$(BIN)/python -m bench.backpressure

bench-puts: stack
	$(BIN)/python -m bench.puts

# Every metadata operation at 10k, 100k and 1M versions (capped where seeding would take over 30 min).
bench-scale: stack
	$(BIN)/python -m bench.scale

soak: stack
	$(BIN)/python -m bench.soak

down:
	test ! -x $(BIN)/movingdata || $(BIN)/movingdata stack down

clean: down
	rm -rf .movingdata
