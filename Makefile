# palplat: two commands do all set-up on a fresh machine.
#   make test      virtualenv + test tools (cached) + the whole suite
#   make sandbox   the full orchestration against a local control plane
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SANDBOX_DIR ?= .sandbox
PYTEST_ARGS ?=
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all venv testbin test test-machine lint docs dist sandbox sandbox-down sandbox-report schema encrypt clean help

all: help

help:
	@echo "make test          run the test suite (creates .venv and builds test tools)"
	@echo "make sandbox       run salt-run state.orchestrate palplat.full in a local sandbox"
	@echo "                   (NODES=3+3: three servers and three agents, each a real minion)"
	@echo "make sandbox-down  stop the sandbox's control plane and Salt daemons"
	@echo "make sandbox-report  write docs/examples (plan, status) from a running sandbox"
	@echo "make lint          ruff"
	@echo "make docs          build the documentation (Sphinx, docs/_build/html; warnings fail)"
	@echo "make dist          build the wheel (dist/palplat-<version>-py3-none-any.whl; version from the git tag)"
	@echo "make schema        regenerate schema/palplat.schema.json"
	@echo "make encrypt RECIPIENT=... [KEY=... INDENT=... ANCHOR=...]   GPG-encrypt a pillar secret"
	@echo "                   (asks for it: never on the command line; prints the YAML to paste)"

$(VENV)/.installed: pyproject.toml tools/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c tools/constraints.txt $$(tools/pydeps test docs)
	touch $@

venv: $(VENV)/.installed

testbin:
	tools/build-testbin

# The suite, then the booted Debian machine tests (marker `machine`,
# tests/functional/test_machine.py: debootstrap image cached under ~/.cache/palplat,
# systemd-nspawn) in their own pytest run; `make test-machine` runs those alone.
test: venv testbin
	$(PY) -m pytest -m "not machine" $(PYTEST_ARGS)
	$(PY) -m pytest -m machine $(PYTEST_ARGS)

test-machine: venv testbin
	$(PY) -m pytest -m machine $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check _utils _modules _states _runners _renderers tests benchmarks

# Sphinx, as Salt extensions document themselves: every warning is an error. The
# configuration and module references are generated from the code at build time.
docs: venv
	$(VENV)/bin/sphinx-build -q -W --keep-going -b html docs docs/_build/html

# The wheel users install with salt-pip (README: Installing). Version from the git tag.
dist: venv
	rm -rf dist
	$(PY) -m pip wheel -q --no-deps -w dist .
	@ls dist/*.whl

schema: venv
	PYTHONPATH=_utils $(PY) -m palplat.schema > schema/palplat.schema.json

encrypt: venv
	@$(PY) tools/palplat-encrypt $(if $(RECIPIENT),--recipient '$(RECIPIENT)') $(if $(GNUPGHOME),--gnupghome '$(GNUPGHOME)') $(if $(KEY),--key '$(KEY)') $(if $(INDENT),--indent '$(INDENT)') $(if $(ANCHOR),--anchor '$(ANCHOR)')

# NODES=3+3 (servers+agents, or a topology YAML file): a fleet of real minions, each
# with the stand-in k3s, one control plane (tests/support/fleet.py; docs/k3s.md)
sandbox: venv testbin
ifdef NODES
	$(PY) -m tests.support.fleet up --dir $(SANDBOX_DIR)/fleet --nodes $(NODES)
else
	$(PY) -m tests.support.sandbox up --dir $(SANDBOX_DIR)
endif

sandbox-down: venv
	$(PY) -m tests.support.fleet down --dir $(SANDBOX_DIR)/fleet
ifndef NODES
	$(PY) -m tests.support.sandbox down --dir $(SANDBOX_DIR)
endif

# the documentation's example plan and status, from a running `make sandbox`
sandbox-report: venv
	$(PY) tools/sandbox-report --dir $(SANDBOX_DIR) --out docs/examples

clean:
	rm -rf $(VENV) $(SANDBOX_DIR) build dist docs/_build
