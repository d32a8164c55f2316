# Edge deployment toolkit: train in the cloud, quantise, run on a Pi.
# `make help` lists the targets. Variables: TASK (digits|fruits|handsigns), DATA_DIR, ARGS.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TASK ?= digits
ARGS ?=
ARTIFACTS ?= artifacts
# The TensorFlow build: the GPU one where an NVIDIA driver answers, the CPU one elsewhere.
TF_EXTRA ?= $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
export DATA_DIR

.PHONY: help setup setup-device train calibration export test test-fast demo lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)  ## create .venv and install training, export, device and test dependencies
	$(PY) -m pip install --quiet -e ".[train,$(TF_EXTRA),device,dev]"
	@$(PY) -c "import tensorflow as tf, cv2, onnxruntime; from ai_edge_litert.interpreter import Interpreter; print('setup ok: tensorflow', tf.__version__, '| GPUs:', len(tf.config.list_physical_devices('GPU')))"

setup-device: $(PY)  ## device-only install (what a Pi gets): numpy, OpenCV, LiteRT, onnxruntime
	$(PY) -m pip install --quiet -r device/requirements.txt

train:  ## train TASK from DATA_DIR (ARGS="--epochs 5" etc.)
	$(PY) -m train $(TASK) --out $(ARTIFACTS) $(ARGS)

calibration:  ## build calibration_data/TASK.npz from the training split
	$(PY) -m calibration_data $(TASK) --artifacts $(ARTIFACTS) $(ARGS)

export:  ## export TASK to artifacts/TASK/bundle (TFLite + ONNX, report.md)
	$(PY) -m export $(TASK) --artifacts $(ARTIFACTS) $(ARGS)

test:  ## the whole test suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest $(ARGS)

test-fast:  ## unit tests only
	$(PY) -m pytest -m "not slow" $(ARGS)

demo:  ## no dataset needed: train digits on scikit-learn's digits, export, classify
	$(PY) -m train digits --embedded --epochs 15 --out $(ARTIFACTS)/demo
	$(PY) -m export digits --artifacts $(ARTIFACTS)/demo

lint:  ## ruff
	$(VENV)/bin/ruff check device train export calibration_data tests

clean:  ## remove artifacts and generated calibration sets (keeps .venv)
	rm -rf $(ARTIFACTS) calibration_data/*.npz calibration_data/*.json .cache
