# qgait-lab: `make demo` and `make test` do all the set-up themselves.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install lab bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/qgait-lab demo

# The browser test drives Debian's chromium; install it when missing and we are root
# (elsewhere the test says it is skipped and why).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium not installed: the browser test will be skipped"; }

# -n auto: one pytest-xdist worker per core, at most 4 (tests/conftest.py says how many, and gives each its
# share of the cores); --dist loadfile keeps a file's fixtures and the notebooks' in-order run on one worker.
# TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= auto

test: $(STAMP) browser
	QGAIT_FAST=$${QGAIT_FAST:-1} $(BIN)/python -m pytest -q --durations=30 -n $(TEST_WORKERS) --dist loadfile

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_quant.py

clean:
	rm -rf $(VENV) build *.egg-info
