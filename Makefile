# The README's two commands call `run` and `test`; everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# Debian packages the tests and benchmarks talk to (real DICOM peers, converters, validators).
DEB_PACKAGES := dcmtk orthanc orthanc-dicomweb dcm2niix dicom3tools gnupg
# An OpenID Connect provider and a headless browser for the access tests (login, tokens).
DEB_PACKAGES += glewlwyd chromium chromium-driver
PYTEST_ARGS ?=
# e.g. make bench BENCH_ARGS="--repeat 2 --receivers openjip,orthanc"
BENCH_ARGS ?=
# e.g. make bench QUERY_BENCH_ARGS="--repeat 10 --orthanc-studies 1000"
QUERY_BENCH_ARGS ?=

.PHONY: help install system-deps viewer run test lint typecheck pytest bench docs clean fuzz
# The OHIF viewer the web service serves at /viewer/: npm's @ohif/app, integrity pinned, unpacked
# (never committed) into VIEWER_DIR, the folder OPENJIP_WEB__VIEWER_PATH names (default
# $$OPENJIP_HOME/viewer).
OHIF_VERSION := 3.13.2
OHIF_INTEGRITY := sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA==
VIEWER_DIR ?= $(or $(OPENJIP_HOME),$(HOME)/.openjip)/viewer
NPM_CACHE_DIR ?= $(HOME)/.cache/openjip

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $@

install: $(VENV)/.installed  ## create .venv and install openjip with every extra

system-deps:  ## install the Debian packages (only as root, only when missing)
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else echo "missing Debian packages:$$missing (install them as root)"; exit 1; fi; \
	fi

run: install  ## start a local site in the foreground (Ctrl-C stops it)
	$(BIN)/openjip site up

lint: install  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

viewer: install system-deps  ## install the OHIF viewer into VIEWER_DIR (npm pack, integrity checked, rebased under /viewer/)
	@if grep -qs "ohif-app-$(OHIF_VERSION).tgz" $(VIEWER_DIR)/.openjip-viewer; then \
		echo "viewer $(OHIF_VERSION) already in $(VIEWER_DIR)"; exit 0; fi; \
	command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; \
	mkdir -p $(NPM_CACHE_DIR) && \
	tarball=$(NPM_CACHE_DIR)/ohif-app-$(OHIF_VERSION).tgz && \
	{ test -f $$tarball || (cd $(NPM_CACHE_DIR) && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null); } && \
	actual="sha512-$$(openssl dgst -sha512 -binary $$tarball | base64 -w0)" && \
	if [ "$$actual" != "$(OHIF_INTEGRITY)" ]; then \
		echo "$$tarball: integrity $$actual, expected $(OHIF_INTEGRITY)"; rm -f $$tarball; exit 1; fi && \
	$(BIN)/python -W ignore::RuntimeWarning -m openjip.web.viewer $$tarball $(VIEWER_DIR)

# tests/podman builds the service images itself (make podman-images, tagged after the checkout).
pytest: install system-deps viewer  ## the test suite alone
	$(BIN)/pytest $(PYTEST_ARGS)

podman-test: install system-deps viewer  ## the chart's containers started with podman kube play (tests/podman) alone
	$(BIN)/pytest tests/podman $(PYTEST_ARGS)

test: lint pytest  ## lint, type-check and run every test

bench: install system-deps viewer  ## ingest (vs Orthanc, storescp), query (C-FIND vs Orthanc, QIDO), series-trigger latency, header-reader, CLI start-up, authentication-cost and viewer (DICOMweb vs Orthanc's plugin, OHIF) benchmarks (root; ~10-20 min, query index built once ~6 min); figures go to bench/results/
	$(BIN)/python bench/ingest.py $(BENCH_ARGS)
	$(BIN)/python bench/query.py $(QUERY_BENCH_ARGS)
	$(BIN)/python bench/trigger.py $(TRIGGER_BENCH_ARGS)
	$(BIN)/python bench/header.py
	$(BIN)/python bench/cli.py
	$(BIN)/python bench/deid.py
	$(BIN)/python bench/auth.py $(AUTH_BENCH_ARGS)
	$(BIN)/python bench/viewer.py $(VIEWER_BENCH_ARGS)

FUZZ_SECONDS ?= 300
FUZZ_ARTIFACTS ?= fuzz-artifacts
# e.g. make fuzz PROTOCOL_FUZZ_ARGS="--cases 50000 --seed 7 --pdata-reader pynetdicom"
PROTOCOL_FUZZ_ARGS ?= --cases 20000

fuzz: install system-deps  ## long fuzz runs: the DICOM header parsers under atheris (FUZZ_SECONDS, default 300; failing inputs land in fuzz-artifacts/), then the receiver's protocol fuzzer; a violation exits non-zero
	mkdir -p $(FUZZ_ARTIFACTS)
	$(BIN)/python tests/fuzz/parser_atheris.py -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=4096 -artifact_prefix=$(FUZZ_ARTIFACTS)/
	$(BIN)/python tests/fuzz/protocol_fuzz.py $(PROTOCOL_FUZZ_ARGS)

# Site chart and images (charts/openjip, services/). Images are named REGISTRY/openjip/NAME:TAG.
CONTAINER_ENGINE ?= $(shell command -v podman || command -v docker)
IMAGE_REGISTRY ?= ghcr.io
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*/\1/p' charts/openjip/Chart.yaml)
PYTHON_IMAGE ?= docker.io/library/python:3.11-slim-bookworm
# Extra flags of `build`, e.g. CONTAINER_BUILD_ARGS="--runtime runc" where crun cannot run.
CONTAINER_BUILD_ARGS ?=
SERVICE_IMAGES := openjip airflow
BUNDLE_DIR ?= dist/chart
# Values files (space separated) the bundle's images.txt is computed for; a PGP key signs it.
CHART_VALUES ?=
CHART_SIGN_KEY ?=
CHART_KEYRING ?= $(HOME)/.gnupg/secring.gpg

# The base of the images the podman tests (tests/podman) build: Debian bookworm made here with
# debootstrap (no registry needed), kept in podman's storage between runs on the same machine.
# It trusts the CAs this machine trusts (pip in the image builds goes through the same network).
BASE_IMAGE ?= localhost/openjip-base:bookworm
BASE_PACKAGES := python3,python3-venv,python-is-python3,ca-certificates
DEBIAN_MIRROR ?= http://deb.debian.org/debian
BASE_PATH := /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# What the podman tests need on the machine (installed by system-deps when missing).
PODMAN_PACKAGES := podman runc debootstrap postgresql

.PHONY: images service-images chart-bundle podman-deps podman-base podman-images podman-test

images: service-images  ## build the service and operator images with podman or docker (IMAGE_REGISTRY, IMAGE_TAG, PYTHON_IMAGE)
	for dir in operators/*/; do \
		test -f $$dir/Dockerfile || continue; \
		image=$$(sed -n 's/^image: *//p' $$dir/operator.yaml); \
		$(CONTAINER_ENGINE) build $(CONTAINER_BUILD_ARGS) --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
			--build-context sdk=src/openjip/sdk -t $$image $$dir || exit 1; \
	done

service-images: viewer  ## build the openjip and airflow images (IMAGE_REGISTRY, IMAGE_TAG, PYTHON_IMAGE)
	@test -n "$(CONTAINER_ENGINE)" || { echo "no container engine (podman or docker) found"; exit 1; }
	for name in $(SERVICE_IMAGES); do \
		$(CONTAINER_ENGINE) build $(CONTAINER_BUILD_ARGS) --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
			--build-context viewer=$(NPM_CACHE_DIR) -f services/$$name/Dockerfile -t $(IMAGE_REGISTRY)/openjip/$$name:$(IMAGE_TAG) . || exit 1; \
	done

podman-deps:  ## podman, runc, debootstrap and PostgreSQL for tests/podman (only as root, only when missing)
	@$(MAKE) --no-print-directory system-deps DEB_PACKAGES="$(PODMAN_PACKAGES)"

podman-base: podman-deps  ## the Debian base image, made with debootstrap once per machine
	@podman image exists $(BASE_IMAGE) || { \
		rootfs=$$(mktemp -d /var/tmp/openjip-base.XXXXXX) && \
		debootstrap --variant=minbase --include=$(BASE_PACKAGES) bookworm $$rootfs $(DEBIAN_MIRROR) && \
		cp /etc/ssl/certs/ca-certificates.crt $$rootfs/etc/ssl/certs/ca-certificates.crt && \
		tar -C $$rootfs -c . | podman import --change "ENV PATH=$(BASE_PATH)" - $(BASE_IMAGE) && \
		rm -rf $$rootfs; }

podman-images: podman-base  ## the service images on the local base (podman's layer cache keeps them)
	@$(MAKE) --no-print-directory service-images CONTAINER_ENGINE=podman PYTHON_IMAGE=$(BASE_IMAGE) \
		CONTAINER_BUILD_ARGS="--runtime runc --pull=never --quiet"

chart-bundle: install  ## packaged chart (+ .prov if CHART_SIGN_KEY) and images.txt for CHART_VALUES into dist/chart
	$(BIN)/python services/chart_bundle.py --out $(BUNDLE_DIR) \
		$(foreach f,$(CHART_VALUES),--values $(f)) \
		$(if $(CHART_SIGN_KEY),--sign-key "$(CHART_SIGN_KEY)" --keyring $(CHART_KEYRING))

clean:  ## remove the venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
