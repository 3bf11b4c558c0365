# distinv: `make book` and `make test` do all the set-up on a fresh machine.
PYTHON  ?= python3
VENV    ?= .venv
PROFILE ?= cpu
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
EXTRAS  ?= physics,book,test

.PHONY: install test book execute build-site site-js check-site chromium gpu-check clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

# Execute every notebook with papermill on the profile, then build the site into book/_build/html.
book: execute build-site

execute: $(STAMP)
	$(PY) -m distinv.book execute --profile $(PROFILE)

build-site: $(STAMP) site-js
	$(PY) -m distinv.book build

# The scripts the site serves itself (MathJax 3, RequireJS, the widgets manager): pinned npm tarballs
# unpacked into book/_build/offline-static (see lib/distinv/book/vendor.py), so pages read offline.
site-js: $(STAMP)
	$(PY) -m distinv.book fetch-js

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

check-site: $(STAMP) chromium
	$(PY) -m distinv.book check-site

clean:
	rm -rf book/_build book/executed

# The external radio simulator's own environment (never imported by the torch side): pyuvsim (exact,
# MPI through the mpi4py + mpich wheels: `.venv-sim/bin/mpiexec -n P`) and matvis (large counts), which
# write Measurement Sets through pyuvdata + python-casacore. See data_scripts/simulate_observation.py.
SIM_VENV     ?= .venv-sim
SIM_STAMP    := $(SIM_VENV)/.installed-stamp
SIM_PACKAGES ?= numpy scipy astropy pyuvdata pyuvsim pyradiosky python-casacore mpi4py mpich matvis

.PHONY: simulator
simulator: $(SIM_STAMP)

$(SIM_STAMP):
	@test -x $(SIM_VENV)/bin/python || $(PYTHON) -m venv $(SIM_VENV)
	$(SIM_VENV)/bin/python -m pip install -q $(SIM_PACKAGES)
	@touch $(SIM_STAMP)

# On a GPU node (no venv needed: torch preinstalled, deepinv from carried wheels, see
# lib/distinv/bench/studies/gpu_check.py): the GPU figures of the issues, JSON under $OUT (default gpu_check_out/).
gpu-check:
	PYTHONPATH=lib$${PYTHONPATH:+:$$PYTHONPATH} python3 -m distinv.bench.studies.gpu_check --out $${OUT:-gpu_check_out}
