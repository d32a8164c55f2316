# Edge deployment toolkit: train in the cloud, quantise, run on a Pi.
# `make help` lists the targets. Variables: TASK (digits|fruits|handsigns|your own), DATA_DIR, ARGS.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TASK ?= digits
ARGS ?=
ARTIFACTS ?= artifacts
# The TensorFlow build: the GPU one where an NVIDIA driver answers, the CPU one elsewhere.
TF_EXTRA ?= $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
export DATA_DIR

SOURCE ?= 0
# The bundle `make run/serve/check` use: the trained one, else `make demo`'s, else the expected path.
BUNDLE ?= $(firstword $(patsubst %/metadata.json,%,$(wildcard $(ARTIFACTS)/$(TASK)/bundle/metadata.json $(ARTIFACTS)/demo/$(TASK)/bundle/metadata.json)) $(ARTIFACTS)/$(TASK)/bundle)
HOST ?= 127.0.0.1
PORT ?= 8080
# A window needs OpenCV's GUI build: installed by `make setup` only where a display answers.
WINDOW ?= $(if $(or $(DISPLAY),$(WAYLAND_DISPLAY),$(filter Darwin,$(shell uname -s))),1,)
PI ?=
PI_PORT ?= 22
PI_DIR ?= ~/edge
SSH_OPTS ?=
DIR ?=
TRAIN_HOST ?=
TRAIN_ARGS ?=
EXPORT_ARGS ?=
INVENTORY ?=
# Deploy the service as `device serve` on this port (the live page) instead of `device run`.
SERVE ?=
SERVE_FLAGS = $(if $(SERVE),--serve $(SERVE) $(if $(filter command line,$(origin HOST)),--serve-host $(HOST)))

.PHONY: help setup setup-window setup-device hand-models train calibration export test test-fast \
	demo run serve check bench deploy rollback deploy-local rollback-local lint clean doctor \
	fog fog-status fog-attach fog-pull fog-stop fleet fleet-rollback

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

setup: $(PY)  ## create .venv and install training, export, device and test dependencies
	$(PY) -m pip install --quiet -e ".[train,$(TF_EXTRA),device,dev]"
	@$(PY) -c "import tensorflow as tf, cv2, onnxruntime; from ai_edge_litert.interpreter import Interpreter; print('setup ok: tensorflow', tf.__version__, '| GPUs:', len(tf.config.list_physical_devices('GPU')))"
	@$(PY) -m hand_models fetch --optional
	$(if $(WINDOW),$(MAKE) setup-window)

setup-window:  ## swap opencv-python-headless for opencv-python (a laptop with a display)
	$(PY) -m pip uninstall -y -q opencv-python-headless
	$(PY) -m pip install --quiet 'opencv-python>=4.8,<6'

hand-models:  ## fetch MediaPipe's palm + landmark models (pinned wheel, SHA-256 checked)
	$(PY) -m hand_models fetch

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

demo:  ## no dataset needed: train digits on scikit-learn's digits, export, classify footage
	$(PY) -m train digits --embedded --epochs 15 --out $(ARTIFACTS)/demo
	$(PY) -m export digits --artifacts $(ARTIFACTS)/demo
	$(PY) -m device check --bundle $(ARTIFACTS)/demo/digits/bundle
	$(PY) -m device bench --bundle $(ARTIFACTS)/demo/digits/bundle --runs 50
	$(PY) -m device footage --bundle $(ARTIFACTS)/demo/digits/bundle --out $(ARTIFACTS)/demo/footage.avi

run:  ## classify live: make run TASK=digits SOURCE=0|picamera|video.mp4|folder/ [ARGS=--headless]
	$(PY) -m device run --bundle $(BUNDLE) --source $(SOURCE) $(ARGS)

serve:  ## live view in a browser: make serve TASK=digits SOURCE=0 [HOST=0.0.0.0 ARGS="--token T"]
	$(PY) -m device serve --bundle $(BUNDLE) --source $(SOURCE) --host $(HOST) --port $(PORT) $(ARGS)

check:  ## self-test TASK's bundle (checksums, every model, verdicts, full frames through the runner)
	$(PY) -m device check --bundle $(BUNDLE)

bench:  ## the comparison table for every task with a bundle (or TASK=...) -> bench/results.md
	$(PY) bench/run.py --artifacts $(ARTIFACTS) $(if $(filter command line,$(origin TASK)),--tasks $(TASK)) $(ARGS)

deploy:  ## deploy TASK (or BUNDLE=dir) to PI="user@host [...]" [PI_PORT=22] [PI_DIR=~/edge] [SERVE=8080 [HOST=0.0.0.0]]
	@test -n "$(PI)" || { echo "error: set PI=user@host (several: PI=\"pi@a pi@b\")" >&2; exit 2; }
	$(PY) -m deploy push --bundle $(BUNDLE) --hosts "$(PI)" --port $(PI_PORT) --dir '$(PI_DIR)' --ssh-opts '$(SSH_OPTS)' $(SERVE_FLAGS) $(ARGS)

rollback:  ## switch PI back to its previous release
	@test -n "$(PI)" || { echo "error: set PI=user@host" >&2; exit 2; }
	$(PY) -m deploy rollback --hosts "$(PI)" --port $(PI_PORT) --dir '$(PI_DIR)' --ssh-opts '$(SSH_OPTS)' $(ARGS)

deploy-local:  ## the same deploy into a local folder: make deploy-local TASK=digits DIR=/tmp/pi
	@test -n "$(DIR)" || { echo "error: set DIR=/some/folder" >&2; exit 2; }
	$(PY) -m deploy local --bundle $(BUNDLE) --dir $(DIR) $(SERVE_FLAGS) $(ARGS)

rollback-local:  ## switch DIR back to its previous release
	$(PY) -m deploy rollback --local $(DIR) $(ARGS)

fog:  ## train TASK on TRAIN_HOST=user@gpu-box, pull the bundle home [and deploy to PI=...]
	@test -n "$(TRAIN_HOST)" || { echo "error: set TRAIN_HOST=user@host (the training machine)" >&2; exit 2; }
	$(PY) -m fog run --task $(TASK) --host $(TRAIN_HOST) --artifacts $(ARTIFACTS) --train-args="$(TRAIN_ARGS)" --export-args="$(EXPORT_ARGS)" $(if $(PI),--pi "$(PI)" --pi-port $(PI_PORT) --pi-dir '$(PI_DIR)' --pi-ssh-opts '$(SSH_OPTS)') $(ARGS)

fog-status fog-attach fog-pull fog-stop:  ## python -m fog status|attach|pull|stop --host TRAIN_HOST
	@test -n "$(TRAIN_HOST)" || { echo "error: set TRAIN_HOST=user@host (the training machine)" >&2; exit 2; }
	$(PY) -m fog $(subst fog-,,$@) --host $(TRAIN_HOST) $(if $(filter fog-pull,$@),--artifacts $(ARTIFACTS)) $(ARGS)

fleet:  ## deploy TASK (or BUNDLE=dir) to an Ansible inventory: make fleet INVENTORY=hosts.ini
	@test -n "$(INVENTORY)" || { echo "error: set INVENTORY=hosts.ini" >&2; exit 2; }
	$(VENV)/bin/ansible-playbook -i $(INVENTORY) deploy/ansible/deploy.yml -e bundle=$(BUNDLE) $(if $(SERVE),-e edgekit_serve_port=$(SERVE) $(if $(filter command line,$(origin HOST)),-e edgekit_serve_host=$(HOST))) $(ARGS)

fleet-rollback:  ## roll an Ansible inventory back to its previous good release
	@test -n "$(INVENTORY)" || { echo "error: set INVENTORY=hosts.ini" >&2; exit 2; }
	$(VENV)/bin/ansible-playbook -i $(INVENTORY) deploy/ansible/rollback.yml $(ARGS)

doctor:  ## devices, strategy, mixed precision and a short timed training run (on a GPU box)
	$(PY) -m train doctor $(ARGS)

lint:  ## ruff
	$(VENV)/bin/ruff check device train export calibration_data hand_models deploy fog bench tests

clean:  ## remove artifacts and generated calibration sets (keeps .venv)
	rm -rf $(ARTIFACTS) calibration_data/*.npz calibration_data/*.json .cache
