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

.PHONY: all venv testbin test test-machine lint sandbox sandbox-down sandbox-report schema encrypt clean help

all: help

help:
	@echo "make test          run the test suite (creates .venv and builds test tools)"
	@echo "make sandbox       run salt-run state.orchestrate palplat.full in a local sandbox"
	@echo "make sandbox-down  stop the sandbox's control plane and Salt daemons"
	@echo "make sandbox-report  write docs/examples (plan, status) from a running sandbox"
	@echo "make lint          ruff"
	@echo "make schema        regenerate schema/palplat.schema.json"
	@echo "make encrypt RECIPIENT=...   GPG-encrypt a pillar secret (asks for it: never on the command line)"

$(VENV)/.installed: pyproject.toml tools/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c tools/constraints.txt $$(tools/pydeps test)
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
	$(VENV)/bin/ruff format --check _utils _modules _states _runners tests benchmarks

schema: venv
	PYTHONPATH=_utils $(PY) -m palplat.schema > schema/palplat.schema.json

encrypt: venv
	@$(PY) tools/palplat-encrypt $(if $(RECIPIENT),--recipient '$(RECIPIENT)') $(if $(GNUPGHOME),--gnupghome '$(GNUPGHOME)')

sandbox: venv testbin
	$(PY) -m tests.support.sandbox up --dir $(SANDBOX_DIR)

sandbox-down: venv
	$(PY) -m tests.support.sandbox down --dir $(SANDBOX_DIR)

# the documentation's example plan and status, from a running `make sandbox`
sandbox-report: venv
	$(PY) tools/sandbox-report --dir $(SANDBOX_DIR) --out docs/examples

clean:
	rm -rf $(VENV) $(SANDBOX_DIR) build dist
