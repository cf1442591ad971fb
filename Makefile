# Set-up and everyday commands. On a fresh Debian 12 machine with the Rust toolchain, Python and apt:
#   make demo   installs what is missing, builds, and runs the agent on sample input
#   make test   installs what is missing and runs every test
#   make bench  prints the benchmark figures
SHELL := /bin/bash
.DEFAULT_GOAL := demo

ORT_VERSION := 1.31.1
DEPS        := .deps
ORT_DIR     := $(DEPS)/onnxruntime
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so
MODELS_DIR  := var/models
SHARED      ?= ../shared
BIN         := target/release/edge-agent
CARGO_DEB_VERSION := 3.8.0
CARGO_DEB   := $(DEPS)/cargo-deb/bin/cargo-deb
CARGO_AUDIT_VERSION := 0.22.2
CARGO_AUDIT := $(DEPS)/cargo-audit/bin/cargo-audit
# The RustSec advisory database cargo audit reads (fetched from the internet).
ADVISORY_DB := https://github.com/rustsec/advisory-db.git

# Debian packages the agent needs to build, run and be tested (GStreamer with the codecs and RTSP, the
# Mosquitto broker the tests start on loopback ports, a CJK font the tests render signs with, and
# dpkg-dev/systemd for building the .deb and checking the unit with systemd-analyze, and Chromium with its
# WebDriver for the duty desk's browser test).
APT_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp gstreamer1.0-tools \
	libgstrtspserver-1.0-dev mosquitto mosquitto-clients python3-pip fonts-wqy-microhei \
	dpkg-dev systemd chromium chromium-driver

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export ORT_DYLIB_PATH := $(abspath $(ORT_LIB))
export EDGE_AGENT_MODELS_DIR := $(abspath $(MODELS_DIR))

.PHONY: deps system-deps onnxruntime cargo-deb build models demo test bench soak deb clean-deps audit-deps

deps: system-deps onnxruntime cargo-deb

# Installs only the packages that are missing, so a provisioned machine does not touch apt at all.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

# ONNX Runtime's shared library from the PyPI wheel, into a project-local directory (never system-wide).
onnxruntime: $(ORT_LIB)
$(ORT_LIB):
	@mkdir -p $(ORT_DIR)
	python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--target $(ORT_DIR)/wheel onnxruntime==$(ORT_VERSION)
	ln -sf wheel/onnxruntime/capi/libonnxruntime.so.$(ORT_VERSION) $(ORT_LIB)
	@test -f $(ORT_LIB) || { echo "libonnxruntime.so.$(ORT_VERSION) not found in the wheel"; exit 1; }

# cargo-deb builds the Debian package (`make deb`, and the packaging test), installed project-locally.
cargo-deb: $(CARGO_DEB)
$(CARGO_DEB):
	cargo install --quiet --locked --version $(CARGO_DEB_VERSION) --root $(DEPS)/cargo-deb cargo-deb

build: deps
	cargo build --release --locked -p edge-agent

# Models come from a local directory ($(SHARED)/models here; a USB stick on a checkpoint PC) and are
# verified against the manifest's SHA-256 before they are installed.
models: build
	$(BIN) models fetch --from $(SHARED)/models --dir $(MODELS_DIR)

demo: models
	scripts/demo.sh $(BIN) $(SHARED)

# Formatting and lints first (cheap, and a failure there says more than a test would), then every test.
# Tests that need root (installing the .deb, mounting a small file system as the state directory) are
# `#[ignore]`d in a plain `cargo test` and run here when this runs as root, as CI does; elsewhere they show
# as ignored.
test: deps
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	@$(MAKE) --no-print-directory audit-deps
	cargo test --workspace --locked --no-fail-fast
	@if [ "$$(id -u)" = 0 ]; then cargo test --locked --no-fail-fast -p edge-agent --test deploy --test storage -- --ignored; \
	else echo "skipped: the deploy and storage tests need root (make test as root runs them)"; fi

bench: models
	cargo bench --locked -p edge-agent

# An hour with 8 RTSP cameras and two broker outages: memory, threads and open files sampled every minute,
# every passing checked upstream (EDGE_SOAK_MINUTES and EDGE_SOAK_CAMERAS change the length and the count).
soak: models
	EDGE_SOAK_MINUTES=$${EDGE_SOAK_MINUTES:-60} cargo bench --locked -p edge-agent --bench soak

# The release package: target/debian/edge-agent_<version>_<arch>.deb
deb: build
	$(CARGO_DEB) -p edge-agent --no-build

# Known vulnerabilities in the locked dependencies. The advisory database comes from the internet: where
# it cannot be reached (CI, checkpoint networks) this says so and the tests go on.
audit-deps:
	@if timeout 20 git ls-remote --heads $(ADVISORY_DB) >/dev/null 2>&1; then \
		[ -x $(CARGO_AUDIT) ] || cargo install --quiet --locked --version $(CARGO_AUDIT_VERSION) --root $(DEPS)/cargo-audit cargo-audit; \
		$(CARGO_AUDIT) audit; \
	else \
		echo "skipped: cargo audit: the RustSec advisory database ($(ADVISORY_DB)) cannot be reached from this machine"; \
	fi

clean-deps:
	rm -rf $(DEPS)
