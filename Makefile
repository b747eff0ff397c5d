# One command each: `make demo` (set up + run the demo pipeline), `make test` (set up + run the tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= demo_out

.PHONY: setup test demo benchmark clean

$(BIN)/causalged: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/causalged

test: setup
	bash .ci/fetch-nf-tools.sh
	$(BIN)/pytest -q

demo: setup
	$(BIN)/causalged run --demo --outdir $(OUT)

benchmark: setup
	$(BIN)/causalged benchmark ../shared/data/osmfish_ssp_cortex ../shared/data/merfish_hypothalamus_rctd --output docs/benchmarks.md --jobs 2
	$(BIN)/python benchmarks/sampling.py demo
	$(BIN)/python benchmarks/paper_protocol.py
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/causality.py

clean:
	rm -rf $(OUT) .pytest_cache
