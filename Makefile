# The two commands of the README:
#   make book   build the HTML book: fresh recorded runs (results/) and every other chapter
#               executed                                   -> _build/html/index.html
#   make test   run the whole test suite: unit tests, every chapter under nbval (smoke profile),
#               the strict book build and the Colab notebooks
#   make colab  the chapters as Colab notebooks                  -> _build/colab/chapters/*.ipynb
# Both create the virtual environment .venv and install what they need on first use.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# Pages built or recorded keep one summary line per long loop, no progress bars
# (gdlbook.progress); a reader's live notebook shows the bars. The notebook tests print nothing
# (their golden outputs must not hold timings).
export GDL_PROGRESS ?= summary

.PHONY: book colab record records test unit notebooks strict-build pages golden clean

# The optional dependencies installed; publishing needs only `book` (EXTRAS=book).
EXTRAS ?= book,test,backends

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# make book shows the recorded runs under results/ whose code matches their chapter (it puts them
# into the build's jupyter-cache) and executes the other chapters; FRESH=1 executes every chapter.
# BOOK_OUT and BOOK_FLAGS are for strict-build (its own folder, warnings as errors).
BOOK_OUT   ?= .
BOOK_FLAGS ?=
book: $(STAMP)
ifeq ($(FRESH),1)
	$(BIN)/jupyter-book build . $(BOOK_FLAGS) --path-output _build/fresh
	@echo "The book is at $(CURDIR)/_build/fresh/_build/html/index.html"
else
	$(BIN)/python -m gdlbook.records prime $(BOOK_OUT)/_build/.jupyter_cache
	$(BIN)/jupyter-book build . $(BOOK_FLAGS) --path-output $(BOOK_OUT)
	@echo "The book is at $(abspath $(BOOK_OUT))/_build/html/index.html"
endif

# The chapters as Colab notebooks (gdlbook.colab): what each page's "Open in Colab" badge opens
# once .github/workflows/publish.yml has pushed them to the branch named in _config.yml.
colab: $(STAMP)
	rm -rf _build/colab
	$(BIN)/python -m gdlbook.colab build --out _build/colab

# Record chapters at a real size: make record CHAPTERS=chapters/NN_name.md PROFILE=laptop
PROFILE ?= laptop
record: $(STAMP)
	@test -n "$(CHAPTERS)" || { echo "usage: make record CHAPTERS=chapters/NN_name.md [PROFILE=laptop|full]"; exit 2; }
	$(BIN)/python -m gdlbook.records record $(CHAPTERS) --profile $(PROFILE)

# Each chapter's record: fresh (shown by the build), stale (code changed since) or none.
records: $(STAMP)
	$(BIN)/python -m gdlbook.records status

test: unit notebooks strict-build pages colab

# Two pytest processes (pytest-xdist), a test file or a chapter each at a time: much of a test's
# time is one-threaded (compiling XLA programs, Python), so two of them fill two cores better
# than one does (unit tests on 2 cores: 627 s against 1,252 s). TEST_WORKERS=0 runs them in one.
TEST_WORKERS ?= 2
XDIST := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

unit: $(STAMP)
	GDL_PROFILE=smoke $(BIN)/python -m pytest tests --ignore=tests/_nbval --ignore=tests/test_book_pages.py $(XDIST)

SMOKE_CACHE := _build/smoke/_build/.jupyter_cache

notebooks: $(STAMP)
	$(BIN)/python tests/nbtools.py prepare
	GDL_PROFILE=smoke GDL_PROGRESS=off $(BIN)/python -m pytest --nbval-lax tests/_nbval -p no:cacheprovider \
		--nb-cache=$(SMOKE_CACHE) $(XDIST)

# Smoke-profile build in its own folder, so its cached outputs never stand in for a full run.
# It finds the chapters `notebooks` just executed in its jupyter-cache and runs only the others.
# The fresh records are primed too, so the strict build checks the pages the book publishes.
strict-build: $(STAMP)
	GDL_PROFILE=smoke $(MAKE) book BOOK_OUT=_build/smoke BOOK_FLAGS="-W -n --keep-going"

# The built pages in headless Chromium (the static latent explorers really respond).
pages: $(STAMP)
	GDL_BOOK_HTML=_build/smoke/_build/html $(BIN)/python -m pytest tests/test_book_pages.py -p no:cacheprovider

# Re-record the golden outputs of cells tagged `golden` (after a deliberate change).
golden: $(STAMP)
	GDL_PROFILE=smoke $(BIN)/python tests/nbtools.py refresh-golden $(CHAPTERS)

clean:
	rm -rf _build tests/_nbval
