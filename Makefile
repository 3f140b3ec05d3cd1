# The two commands of the README, and a few helpers. Run as root.
PYTHON := .venv/bin/python
SCENARIO ?= primary-crash
ARGS ?=

.PHONY: setup run test lint

setup:
	@bash setup/install.sh

run: setup
	$(PYTHON) -m experiments run $(SCENARIO) $(ARGS)

test: setup
	$(PYTHON) -m pytest -q $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .
