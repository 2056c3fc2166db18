# One venv in .venv. This machine's torch/torchvision pair is pinned here (and so in
# CI); pyproject.toml keeps the ranges loose for users. Override: make TORCH="torch torchvision"
PYTHON ?= python3
TORCH ?= torch==2.14.1 torchvision==0.29.1
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench figure golden clean

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

bench: setup
	$(BIN)/python benchmarks/speed.py

# The README's picture.
figure: setup
	$(BIN)/reversenet compare --weights random -o docs/compare-vgg16-random.png

clean:
	rm -rf $(VENV) reversenet-out .pytest_cache

# Rewrite the golden images on purpose (tests/test_golden.py diffs against them).
golden: setup
	rm -rf tests/golden
	$(BIN)/reversenet visualize -m alexnet -w random --seed 0 -v all -o tests/golden/alexnet
	$(BIN)/reversenet visualize -m vgg16 -w random --seed 0 -v all -o tests/golden/vgg16
