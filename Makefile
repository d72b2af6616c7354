# The two commands of the README: `make demo` and `make test`. Both create .venv when needed.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
DEMO_PARTICIPANTS ?= 300
DEMO_PORT ?= 8000

.PHONY: demo test lint format venv benchmarks

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) manage.py migrate --noinput
	DEMO_PORT=$(DEMO_PORT) $(PY) manage.py seed_demo --participants $(DEMO_PARTICIPANTS) --if-missing
	DEMO_PORT=$(DEMO_PORT) $(PY) scripts/run_demo.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

benchmarks: $(STAMP)
	$(PY) benchmarks/seed_cohort.py
