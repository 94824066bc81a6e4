# normlab: every developer and CI entry point. `make help` lists the targets.
# On a fresh machine: `make book` (build the site) and `make test` (run every test).

VENV      := .venv
PY        := $(VENV)/bin/python
BIN       := $(VENV)/bin
STAMP     := $(VENV)/.installed-requirements
SITE      := _build/html
PORT      ?= 8000
CHAPTERS  := $(sort $(wildcard chapters/*.ipynb))
# `make execute NB=chapters/01_why_normalize.ipynb`; without NB, every chapter.
NB        ?= $(CHAPTERS)
# Parallel pytest workers (pytest-xdist); nbval keeps each notebook on one worker.
WORKERS   ?= 2

.PHONY: help book test lint unit nbval colab-test site-test page-weights serve execute clean

help:
	@echo "make book      build the site into $(SITE) (creates $(VENV) on first use)"
	@echo "make test      lint, unit tests, strict nbval of every chapter, build, browser test"
	@echo "make serve     serve the built site on http://localhost:$(PORT)"
	@echo "make execute   re-run notebooks and store outputs (NB=path, default: all chapters)"
	@echo "make lint      ruff check"
	@echo "make colab-test  run every chapter with Colab's preinstalled versions (NB=path: some)"

# (Re)install when requirements.txt or pyproject.toml changes.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt
	touch $@

# Clean build: nothing executes (execute_notebooks: off), stale pages are not left behind.
book: $(STAMP)
	rm -rf $(SITE) _build/.doctrees
	$(BIN)/jupyter-book build -W --keep-going .
	@echo
	@echo "Site built. Open file://$(CURDIR)/$(SITE)/index.html"
	@echo "or run 'make serve' and open http://localhost:$(PORT)/"

test: lint unit nbval colab-test book site-test

lint: $(STAMP)
	$(BIN)/ruff check src tests _ext

# pytest exits 5 when it collects no test (e.g. before the first chapter exists).
unit: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) --ignore-glob='tests/test_site*.py' tests || [ $$? -eq 5 ]

nbval: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) --dist loadfile --nbval --nbval-current-env \
		--nbval-sanitize-with tests/sanitize.cfg chapters/ || [ $$? -eq 5 ]

# Every chapter once, top to bottom, in a second virtualenv pinned to what Colab preinstalls
# (tests/colab/requirements.txt says where the versions come from: ipywidgets 7, IPython 7,
# plotly 5), plus this package as the chapters' Colab install cell brings it (a regular
# install with the [triton] extra, no book or test tools). Fails on any error outside a
# `raises-exception` cell; outputs are not compared. Python 3.13 as on Colab, python3 where
# it is missing (or only a pyenv shim that cannot run). torch: the book's pin by default,
# because Colab's CPU build (2.11.0+cpu) lives on PyTorch's own wheel index, which CI cannot
# reach; where it can:
# `make colab-test COLAB_TORCH=torch==2.11.0+cpu COLAB_INDEX=https://download.pytorch.org/whl/cpu`.
COLAB_VENV   := .venv-colab
COLAB_PYTHON ?= $(shell python3.13 -c '' 2>/dev/null && command -v python3.13 || command -v python3)
COLAB_TORCH  ?= torch==2.13.0
COLAB_INDEX  ?=
colab-test:
	test -x $(COLAB_VENV)/bin/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/pip install -q $(if $(COLAB_INDEX),--extra-index-url $(COLAB_INDEX)) \
		-r tests/colab/requirements.txt "$(COLAB_TORCH)"
	$(COLAB_VENV)/bin/pip install -q ".[triton]"
	PYDEVD_DISABLE_FILE_VALIDATION=1 $(COLAB_VENV)/bin/python tests/colab/run_chapters.py $(NB)

# Every browser test (tests/test_site*.py); with CI=true a missing Chromium or build fails
# instead of skipping.
site-test: $(STAMP)
	$(BIN)/pytest -n $(WORKERS) tests/test_site*.py

# Markdown table for README.md ("Page weights and load times"), measured by the browser test
# on one worker (times are load-sensitive; bytes are not).
page-weights: $(STAMP)
	rm -f $(SITE)/../load-report.tsv
	NORMLAB_LOAD_REPORT=$(SITE)/../load-report.tsv $(BIN)/pytest -q \
		tests/test_site_reader.py -k test_first_visit_weight
	@echo "| page | first visit MB | longest task during load, ms | first paint / intro's |"
	@echo "| --- | ---: | ---: | ---: |"
	@sort $(SITE)/../load-report.tsv | awk -F'\t' \
		'{printf "| %s | %.2f | %s | %s |\n", $$1, $$2/1e6, $$3, $$5}'

serve:
	@test -f $(SITE)/index.html || { echo "No site yet: run 'make book' first."; exit 1; }
	@echo "Serving http://localhost:$(PORT)/ (Ctrl-C to stop)"
	$(PY) -m http.server --directory $(SITE) $(PORT)

# Execute in place, then drop the stored widget state (random model ids; the site never
# loads a widget manager), so re-executing an unchanged notebook gives an unchanged file.
execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 $(NB)
	$(PY) -c 'import sys, nbformat; [nbformat.write(nb, p) for p in sys.argv[1:] \
		for nb in [nbformat.read(p, as_version=4)] if nb.metadata.pop("widgets", None)]' $(NB)

clean:
	rm -rf _build
