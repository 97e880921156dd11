# momentum-sweep: every command creates the virtual environment it needs on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STUDY  ?= studies/*.toml
# Where `make clean` works; the stored trials live in $(RESULTS)/sweep.db.
RESULTS ?= results
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-m 'not slow'"`.
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv lint test sweep report bench dashboard clean clean-all

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# pip would byte-compile every installed module (about 17 s of a 30 s install here, mostly code
# no command imports); installed with --no-compile, Python compiles what is imported, once, on its
# first import. That needs bytecode writing on, which a shell may turn off
# (PYTHONDONTWRITEBYTECODE=1): set empty, it is on for make's commands.
export PYTHONDONTWRITEBYTECODE :=

# Each stamp is newer than pyproject.toml once its part is installed: the package for sweeps and
# reports, then the test and PostgreSQL extras, which a sweep does not need (about 5 s of a
# fresh install).
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --no-compile -e .
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --no-compile -e '.[test,postgres]'
	touch $@

venv: $(BIN)/.installed-test  ## create .venv with the package and its test extras

lint: $(BIN)/.installed-test  ## check the code with ruff (settings in pyproject.toml)
	$(BIN)/ruff check .

test: lint  ## run ruff, then the test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# `sweep run` races each finished study's top settings on fresh networks (the confirmation).
sweep: $(BIN)/.installed  ## run every study in studies/ (or STUDY=studies/x.toml), then write results/
	$(BIN)/sweep run $(STUDY)
	$(BIN)/sweep report --all

report: $(BIN)/.installed  ## write results/ (plots, best.json, index.html) from the stored trials
	$(BIN)/sweep report --all

bench: $(BIN)/.installed  ## print trainer and end-to-end speed figures
	$(BIN)/python -m sweep.bench

dashboard: $(BIN)/.installed  ## serve optuna-dashboard on results/sweep.db at 127.0.0.1:8080
	$(BIN)/python -m pip install --quiet --no-compile -e '.[dashboard]'
	$(BIN)/optuna-dashboard sqlite:///results/sweep.db --host 127.0.0.1 --port 8080

# The database and its lock and write-ahead files are the stored trials, not generated output.
clean:  ## remove generated pages and plots; keeps the stored trials (results/sweep.db)
	find $(RESULTS) -mindepth 1 -maxdepth 1 ! -name README.md ! -name .gitkeep \
		! -name 'sweep.db' ! -name 'sweep.db-*' ! -name 'sweep.db.lock' -exec rm -rf {} +

clean-all:  ## remove everything under results/, the stored trials (results/sweep.db) too
	find $(RESULTS) -mindepth 1 -maxdepth 1 ! -name README.md ! -name .gitkeep -exec rm -rf {} +
