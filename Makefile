# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test docs install clean

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

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy $(TYPED)
	$(SPHINX) -E -W --keep-going
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .mypy_cache docs/_build docs/_api
