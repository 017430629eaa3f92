# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test docs install postgis clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PIN) || $(PIP) install -q torch torchvision
	$(PIP) install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) scripts/demo.py

# the typed core: what datasets, model files, configs and options promise (mypy, about a minute cold)
TYPED := rsseg/schema.py rsseg/device.py rsseg/errors.py rsseg/models/checkpoint.py rsseg/data/patches.py rsseg/data/patch_dataset.py \
	rsseg/train/config.py rsseg/cli/options.py

# the documentation site (Sphinx + MyST): HTML in docs/_build/html; `make test` builds it strictly (warnings fail)
SPHINX := $(PY) -m sphinx -q -b html docs docs/_build/html

docs: install
	$(SPHINX)

# PostgreSQL + PostGIS from Debian's packages for tests/test_postgis.py, which starts its own throwaway
# cluster (initdb + pg_ctl in a temporary folder); without them (no root, no sudo) those tests skip
postgis:
	@ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 || \
	{ S=$$([ "$$(id -u)" = 0 ] || echo sudo -n); $$S apt-get update -q && $$S apt-get install -y -q postgresql postgis; } || \
	echo "PostGIS not installed: tests/test_postgis.py will skip"

test: install postgis
	$(PY) -m ruff check .
	$(PY) -m mypy $(TYPED)
	$(SPHINX) -E -W --keep-going
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .mypy_cache docs/_build docs/_api
