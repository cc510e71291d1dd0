# `make demo` and `make test` do every set-up step on a fresh machine (apt, venv, OVS) and are
# quick when repeated.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system venv ovs test test-unit demo lint clean

setup: system venv ovs

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

ovs: system
	@bash scripts/ovs-start.sh

test: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/pytest -q -ra

test-unit: venv
	$(BIN)/pytest -q -m "not ovs and not influx"

demo: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/pfepo demo
	$(if $(DEMO_KILL_CONTROLLER),$(BIN)/python -m pfepo_lab.cluster.handover --story)

lint: venv
	$(BIN)/ruff check pfepo pfepo_lab tests mininet_topologies benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
