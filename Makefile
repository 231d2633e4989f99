# Two entry points (README quick start). Both create ./.venv on first use and install the
# project into it; torch is pinned explicitly so pip takes the local CPU build instead of
# pulling a multi-GB CUDA wheel.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: demo test lint bench venv clean cohorts weights evaluate ablations cells seg-weights seg-models seg-evaluate quantify

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[test]" "$(TORCH_PIN)"
	touch $(STAMP)

venv: $(STAMP)

## demo: a simulated patient scanned as a 2x2 mosaic into ./srash-data with live LBNet-Dx;
## prints the diagnosis, writes out/demo/composite.png and out/demo/gradcam.png
demo: $(STAMP)
	$(BIN)/srash demo --grid 2x2 --data-dir srash-data --out out/demo

## test: the linters (layering rules, style, types), then the whole suite (warnings are
## errors); slow end-to-end tests included. TEST_WORKERS processes (pytest-xdist), each
## taking whole test modules; TEST_WORKERS=0 runs in this process
TEST_WORKERS ?= 2
test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

## lint: ruff, the import contracts of pyproject.toml (the layering rules) and mypy on the
## physics and plan packages
lint: $(STAMP)
	$(BIN)/ruff check simulators plans srash_ophyd ml tests benchmarks studies
	$(BIN)/lint-imports
	$(BIN)/mypy simulators plans

## bench: speed and memory benchmarks (print ratios; results recorded in docs/benchmarks.md)
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_field.py

## weights: the shipped LBNet-Dx weights from scratch (normal vs NOA about 25 CPU minutes
## on 2 quiet cores, SPT vs SPG about 35; docs/model_card.md): simulated training
## cohorts (train-v1 + train-v2, 84 patients; about 8 GB of patches in memory) and a
## held-out cohort of new seeds as bluesky runs in ./dx-data, both tasks trained on the
## first (with the session-gain augmentation), evaluated on the second
DX := dx-data
TEST_COHORT := $(BIN)/srash cohort --name test-v1 --split test --seed-base 50000 \
		--patients normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=4 --data-dir $(DX)
cohorts: $(STAMP)
	$(BIN)/srash cohort --name train-v1 --split train --seed-base 1000 \
		--patients normal=10,NOA-SPT=8,NOA-SPG=8,NOA-SCO=2 --data-dir $(DX)
	$(BIN)/srash cohort --name train-v2 --split train --seed-base 20000 \
		--patients normal=20,NOA-SPT=16,NOA-SPG=16,NOA-SCO=4 --data-dir $(DX)
	$(TEST_COHORT)

## quantify: lipid droplets per tubule on the held-out cohort (paper Fig. 2J-M, ~5 min):
## reports/quantify/{tubules.csv, summary.json, ld_quantification.png}
quantify: $(STAMP)
	$(TEST_COHORT)
	$(BIN)/srash quantify --cohort test-v1 --data-dir $(DX)

## SPT vs SPG needs longer than the default 12 epochs / patience 8 (docs/model_card.md)
SPT_EPOCHS := 24
weights: cohorts
	$(BIN)/srash train --task normal-vs-noa --split train --session-gain --epochs 12 \
		--patience 4 --data-dir $(DX)
	$(BIN)/srash train --task spt-vs-spg --split train --session-gain --data-dir $(DX) \
		--epochs $(SPT_EPOCHS) --patience $(SPT_EPOCHS)

evaluate: $(STAMP)
	$(BIN)/srash evaluate --task normal-vs-noa --cohort test-v1 --ablations --data-dir $(DX)
	$(BIN)/srash evaluate --task spt-vs-spg --cohort test-v1 --ablations --data-dir $(DX)

## ablations: channel ablations at full training length (issue 14; hours of CPU, not in
## CI): LBNet-Dx trained per channel subset on train-v1 (28 patients; `srash train`'s
## 12 epochs, SPT vs SPG 24; no session gain; ~17 min each on one thread), each
## evaluated on the held-out cohort (reports/ablations/<task>/<subset>); RGB is the
## three-channel model of the same recipe (never written over the shipped weights); then
## the table (python -m studies.ablations)
ABLATION_SUBSETS := RGB R G B RG RB GB
ablations: $(STAMP)
	for t in normal-vs-noa spt-vs-spg; do for c in $(ABLATION_SUBSETS); do \
		ep=$$( [ $$t = spt-vs-spg ] && echo "--epochs $(SPT_EPOCHS) --patience $(SPT_EPOCHS)" ); \
		$(BIN)/srash train --task $$t --channels $$c --cohort train-v1 --data-dir $(DX) \
			--out reports/ablations/lbnet_$${t}_$$c.pt \
			--report-dir reports/ablations/train-$$t-$$c $$ep --quiet || exit 1; \
		$(BIN)/srash evaluate --task $$t --weights reports/ablations/lbnet_$${t}_$$c.pt \
			--cohort test-v1 --data-dir $(DX) --no-baselines --gradcam 0 --quiet \
			--out reports/ablations/$$t/$$c || exit 1; \
	done; done
	$(BIN)/python -m studies.ablations --reports reports --out reports/ablations

## seg-weights: the shipped hybrid-UNet segmenter from scratch (~22 CPU minutes): simulated
## exfoliated-cell stacks (train 32 + held-out 16, new seeds) in ./cells-data, training,
## then Dice of the network and of the spectral phasor vs simulator truth (reports/)
CELLS := cells-data
cells: $(STAMP)
	$(BIN)/srash cohort --name cells-train-v2 --split train --specimen cells --samples 32 \
		--seed-base 1000 --data-dir $(CELLS)
	$(BIN)/srash cohort --name cells-test-v2 --split test --specimen cells --samples 16 \
		--seed-base 50000 --data-dir $(CELLS)

seg-weights: cells
	$(BIN)/srash train-seg --model hybrid-unet --cohort cells-train-v2 --data-dir $(CELLS) \
		--epochs 60 --lr-schedule cosine  # = train-seg's defaults, spelled out

## seg-models: the ablations and baselines of the model card (not shipped; reports/seg-v2;
## 30 epochs at a constant rate, the recipe they were measured with, not seg-weights' 60 cosine);
## unet3d on 64 px crops for 36 epochs: the CPU-time budget of one hybrid ablation (~1 h)
UNET3D_EPOCHS := 36
SEG_ABLATIONS := hybrid-no-msr hybrid-no-compression hybrid-no-attention unet2d
seg-models: cells
	for m in $(SEG_ABLATIONS); do $(BIN)/srash train-seg --model $$m --cohort cells-train-v2 \
		--data-dir $(CELLS) --epochs 30 --lr-schedule constant \
		--out reports/seg-v2/seg_$$m.pt || exit 1; done
	$(BIN)/srash train-seg --model unet3d --cohort cells-train-v2 --data-dir $(CELLS) \
		--epochs $(UNET3D_EPOCHS) --lr-schedule constant --crop 64 \
		--out reports/seg-v2/seg_unet3d.pt

seg-evaluate: $(STAMP)
	$(BIN)/srash evaluate-seg --cohort cells-test-v2 --data-dir $(CELLS) \
		--weights ml/weights/seg_hybrid-unet.pt $(filter-out %/seg_hybrid-unet.pt,$(wildcard reports/seg-v2/seg_*.pt))

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
