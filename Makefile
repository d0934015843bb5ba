# hubsync: the commands a developer and CI run. `make help` lists them.

CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: help setup build test lint fmt sandbox dev-broker demo bench clean

help:
	@echo "make setup       check the toolchain and fetch every crate (run once on a new machine)"
	@echo "make build       build the workspace (debug)"
	@echo "make test        run every unit, integration and end-to-end test"
	@echo "make lint        rustfmt check and clippy with warnings as errors"
	@echo "make fmt         format the code"
	@echo "make sandbox     run broker, schema registry and HubSpot sandbox until Ctrl-C"
	@echo "make dev-broker  run only the development Kafka broker until Ctrl-C"
	@echo "make demo        run the pipeline on the sandbox with a generated team and report (release build)"
	@echo "make bench       measure throughput against the in-process sandbox (release build, then ~3 min)"

# librdkafka is built from source by rdkafka-sys with its own configure script: it needs a C
# compiler, make and perl, which the machine image carries, and OpenSSL's headers (libssl-dev,
# found by pkg-config) for TLS and SASL/SCRAM, installed from Debian when missing. The deploy/ tests need promtool,
# systemd-analyze and docker-compose (its `config` checks a compose file without a Docker
# daemon), and the console's browser test needs chromium and chromedriver: installed from
# Debian when missing (as root, or through sudo); and, from PyPI into a
# virtualenv under .tools/ (not committed), kubernetes-validate (the Kubernetes API's JSON
# schemas, bundled: no cluster, no network) and check-jsonschema (with the compose-spec schema
# bundled). Both steps are skipped when what they install is there.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
TOOLS_VENV := .tools/venv
PY_TOOLS := kubernetes-validate==1.37.0 check-jsonschema==0.39.0

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)"; exit 1; }
	@command -v cc >/dev/null || command -v gcc >/dev/null || { echo "no C compiler: install gcc (librdkafka is built from source)"; exit 1; }
	@command -v make >/dev/null || { echo "make not found"; exit 1; }
	@command -v perl >/dev/null || { echo "perl not found: librdkafka's configure script needs it"; exit 1; }
	@pkg-config --exists openssl 2>/dev/null || { \
		echo "installing OpenSSL's headers and pkg-config (Debian: libssl-dev, pkg-config) for librdkafka's TLS"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends libssl-dev pkg-config >/dev/null; }
	@$(CARGO) fmt --version >/dev/null 2>&1 || { echo "rustfmt missing: rustup component add rustfmt"; exit 1; }
	@$(CARGO) clippy --version >/dev/null 2>&1 || { echo "clippy missing: rustup component add clippy"; exit 1; }
	@command -v promtool >/dev/null && command -v systemd-analyze >/dev/null && command -v docker-compose >/dev/null \
		&& command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "installing promtool, systemd-analyze, docker-compose, chromium and chromedriver (Debian: prometheus, systemd, docker-compose, chromium, chromium-driver)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus systemd docker-compose chromium chromium-driver >/dev/null; }
	@[ "$$(cat $(TOOLS_VENV)/installed 2>/dev/null)" = "$(PY_TOOLS)" ] || { \
		echo "installing $(PY_TOOLS) (PyPI) into $(TOOLS_VENV)"; \
		python3 -c 'import venv, ensurepip' 2>/dev/null || { \
			$(SUDO) apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null; }; \
		python3 -m venv --clear $(TOOLS_VENV) && \
		$(TOOLS_VENV)/bin/pip install -q --disable-pip-version-check --no-input $(PY_TOOLS) && \
		echo "$(PY_TOOLS)" > $(TOOLS_VENV)/installed; }
	$(CARGO) fetch $(CARGO_FLAGS)

build:
	$(CARGO) build $(CARGO_FLAGS) --workspace --all-targets

test:
	$(CARGO) test $(CARGO_FLAGS) --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

sandbox:
	$(CARGO) run $(CARGO_FLAGS) -p hubsync-dev --bin hubsync-dev -- sandbox

dev-broker:
	$(CARGO) run $(CARGO_FLAGS) -p hubsync-dev --bin hubsync-dev -- dev-broker

demo:
	$(CARGO) run $(CARGO_FLAGS) --release -p hubsync-dev --bin hubsync-dev -- demo

# One run prints every figure and a table with its target; BENCH_ARGS="--quick" for a smoke run.
bench:
	$(CARGO) bench $(CARGO_FLAGS) -p hubsync-dev --bench throughput -- $(BENCH_ARGS)

clean:
	$(CARGO) clean
