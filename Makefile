# The two commands of the README, and a few helpers. Run as root.
PYTHON := .venv/bin/python
SCENARIO ?= primary-crash
ARGS ?=

.PHONY: setup run test lint unit venv clean demo soak chaos

setup:
	@bash setup/install.sh

run: setup
	$(PYTHON) -m experiments run $(SCENARIO) $(ARGS)

test: setup
	$(PYTHON) -m pytest -q $(ARGS)

# A live view a teacher drives from the keyboard (`help` lists the commands);
# SCRIPT=file plays timed commands, one per line: `<seconds> <command>`.
SCRIPT ?=
demo: setup
	$(PYTHON) -m experiments demo $(if $(SCRIPT),--script $(SCRIPT)) $(ARGS)

# Ten minutes of load with a fault every 60 s: outside `make test`, figures in the README.
soak: setup
	$(PYTHON) -m pytest -q -m soak tests/soak $(ARGS)

# The nemesis for 30 minutes: random faults, invariants checked all along (exit 1 on a violation).
SEED ?= 1
chaos: setup
	$(PYTHON) -m experiments chaos --seed $(SEED) --duration 1800 $(ARGS)

# Without root, once `sudo make setup` has made the venv: the style check, and the unit tests
# that need neither root nor the machine's daemons (`machine` marks the others).
lint: venv
	$(PYTHON) -m ruff check .

unit: venv
	$(PYTHON) -m pytest -q -p no:cacheprovider -m "not integration and not soak and not machine" \
		--ignore=tests/integration --ignore=tests/soak $(ARGS)

venv:
	@test -x $(PYTHON) || { echo "no .venv yet: run sudo make setup (it installs everything once)" >&2; exit 2; }

# Removes what runs killed with SIGKILL left, exactly as their state.json files list it.
clean:
	$(PYTHON) -m experiments clean $(ARGS)
