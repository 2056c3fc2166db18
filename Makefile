# One venv in .venv. This machine's torch/torchvision pair is pinned here (and so in
# CI); pyproject.toml keeps the ranges loose for users. Override: make TORCH="torch torchvision"
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint docs bench bench-run objectness figure regression-figure explore-figure golden clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The main job: the eight variants of the sample photo on VGG-16 (random weights:
# no download needed) in a 2x4 grid.
demo: setup
	$(BIN)/reversenet compare --weights random

test: setup
	$(BIN)/python -m pytest

# Lint (CI runs it before the tests): ruff, then mypy on the package (its settings in
# pyproject.toml), both pinned in the test extra.
lint: setup
	$(BIN)/ruff check reversenet tests benchmarks examples docs
	$(BIN)/mypy

# The API reference from the docstrings (Sphinx + numpydoc, which checks every documented
# object's parameters and returns) in build/docs; any warning fails it (CI runs it).
docs: setup
	$(BIN)/sphinx-build -q -b html -W --keep-going docs/api build/docs

# One table: reversenet against autograd and captum (time, peak memory, bottleneck bytes,
# scaling) on VGG-16 (random weights), with the targets; captum comes from the bench extra.
# ~4 minutes on 2 idle CPU cores, twice that on a busy machine.
# Options: make bench BENCH="--repeats 5 --markdown bench.md"
bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/speed.py $(BENCH)

# Photos per second of `reversenet run` (batch sizes 1, 8, 32) against a shell loop of
# `reversenet visualize`, 64 photos on VGG-16 (random weights); ~10 minutes on 2 cores.
bench-run: setup
	$(BIN)/python benchmarks/throughput.py

# Do saliency maps of a trained CNN find objects? Trains a small classifier on synthetic
# photos with known masks (~4 minutes, cached in build/objectness), then segments 200
# held-out photos with the trained and the untrained network; ~11 minutes on 2 cores.
objectness: setup
	$(BIN)/python benchmarks/objectness.py
	$(BIN)/python -c "from PIL import Image; Image.open('build/objectness/objectness.png').convert('RGB').save('docs/objectness.jpg', quality=85)"

# The README's pictures (random weights: offline).
figure: setup
	$(BIN)/reversenet compare --weights random -o docs/compare-vgg16-random.png
	$(BIN)/reversenet run fig5-random-weights --set out=reversenet-out/fig5
	cp reversenet-out/fig5/montages/vgg16_pool5_photo-by-variant-render.png docs/fig5-random-weights.png
	$(BIN)/reversenet run fig7-phase --set weights=random --set out=reversenet-out/fig7
	cp reversenet-out/fig7/montages/vgg16_pool5_noise_photo-by-variant.png docs/fig7-phase.png
	$(BIN)/reversenet run fig4-neuron-selectivity --set weights=random --set model=alexnet --set out=reversenet-out/fig4
	$(BIN)/python -c "from PIL import Image; m = Image.open('reversenet-out/fig4/montages/alexnet_layer-select-by-variant.png'); \
		m.reduce(2).convert('RGB').save('docs/fig4-selectivity.jpg', quality=85)"

# The README's picture of a regression summary (headless Chromium: Debian's chromium and chromium-driver).
regression-figure: setup
	$(BIN)/python docs/regression_figure.py

# The README's picture of `reversenet explore` (headless Chromium, as above).
explore-figure: setup
	$(BIN)/python docs/explore_figure.py

clean:
	rm -rf $(VENV) reversenet-out .pytest_cache .mypy_cache

# Rewrite the golden images on purpose (tests/test_golden.py diffs against them).
golden: setup
	rm -rf tests/golden
	$(BIN)/reversenet visualize -m alexnet -w random --seed 0 -v all -o tests/golden/alexnet
	$(BIN)/reversenet visualize -m vgg16 -w random --seed 0 -v all -o tests/golden/vgg16
	rm tests/golden/*/manifest.jsonl  # run records with this machine's paths: not golden
