# Two entry points (README quick start). Both create ./.venv on first use and install the
# project into it; torch is pinned explicitly so pip takes the local CPU build instead of
# pulling a multi-GB CUDA wheel.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test bench venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[test]" "$(TORCH_PIN)"
	touch $(STAMP)

venv: $(STAMP)

## demo: simulate one SRASH field of a normal testis section -> OME-TIFF + PNG under out/
demo: $(STAMP)
	mkdir -p out
	$(BIN)/srash simulate fov --specimen testis --phenotype normal --seed 7 \
		--out out/field.ome.tif --png out/field.png --truth out/field-labels.ome.tif

## test: the whole suite (warnings are errors); slow end-to-end tests included
test: $(STAMP)
	$(BIN)/python -m pytest -q

## bench: speed and memory benchmarks (print ratios; results recorded in docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_field.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
