# The two commands of the README, and a few helpers. Run as root.
PYTHON := .venv/bin/python
SCENARIO ?= primary-crash
ARGS ?=

.PHONY: setup run test lint clean

setup:
	@bash setup/install.sh

run: setup
	$(PYTHON) -m experiments run $(SCENARIO) $(ARGS)

test: setup
	$(PYTHON) -m pytest -q $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .

# Removes what runs killed with SIGKILL left, exactly as their state.json files list it.
clean:
	$(PYTHON) -m experiments clean $(ARGS)
