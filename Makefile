# Set-up and entry points. Everything runs inside .venv in this repository.
# A GPU user can pick another torch build:  make TORCH_SPEC="torch==2.5.1 torchvision==0.20.1" test
# On a machine with an NVIDIA GPU, setup installs torch's CUDA build matching nvcc (TORCH_CUDA_TAG=cu124
# forces one), pycolmap-cuda12, and builds gsplat's CUDA extension (splat4d/cuda_setup.py; README, GPU).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_CUDA_TAG ?=
STAMP := $(VENV)/.installed

.PHONY: setup demo raster-demo lint test bench bench-sharptime bench-shapeofmotion gpu-check bench-scale

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	# no extra pip arguments without an NVIDIA GPU; on one, the CUDA build's index (or a message and exit 1)
	torch_index="$$($(PY) splat4d/cuda_setup.py torch-index '$(TORCH_SPEC)' --cuda-tag '$(TORCH_CUDA_TAG)')" && \
		$(PY) -m pip install --quiet $(TORCH_SPEC) $$torch_index
	$(PY) -m pip install --quiet -e '.[dev]' $(TORCH_SPEC)
	# ns-render needs an ffmpeg on PATH: use the static build that imageio-ffmpeg ships
	command -v ffmpeg >/dev/null || ln -sf "$$($(PY) -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')" $(VENV)/bin/ffmpeg
	# GPU machines only: torch vs nvcc, pycolmap-cuda12, gsplat's CUDA extension built now (minutes), not at step 0
	$(PY) -m splat4d.cuda_setup finish
	touch $(STAMP)

DEMO_RUN := outputs/demo/sharptime-demo/latest
# OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads otherwise busy-wait between parallel regions,
# and a training step next to other CPU-bound processes slows down 4-8x instead of 2x
# (benchmarks/cpu_sharing.py). It must be set before torch starts, hence here.

demo: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(VENV)/bin/ns-train sharptime-demo --vis tensorboard --experiment-name demo --timestamp latest
	$(VENV)/bin/ns-eval --load-config $(DEMO_RUN)/config.yml --output-path $(DEMO_RUN)/eval.json
	$(VENV)/bin/splat4d-time-path --load-config $(DEMO_RUN)/config.yml --output-path $(DEMO_RUN)/time_sweep.json
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/ns-render camera-path --load-config $(DEMO_RUN)/config.yml \
		--camera-path-filename $(DEMO_RUN)/time_sweep.json --output-path renders/demo_time_sweep.mp4

raster-demo: $(STAMP)
	$(PY) -m splat4d.demo --out renders/raster_demo.png

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: $(STAMP) lint
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/raster_cpu.py

bench-sharptime: $(STAMP)
	$(PY) benchmarks/sharptime_synthetic.py --jobs 2

bench-shapeofmotion: $(STAMP)
	$(PY) benchmarks/shapeofmotion_synthetic.py

# GPU machines: CUDA tests, SharpTimeGS / splatfacto / Shape of Motion timing, CPU-vs-gsplat agreement (~5 min)
gpu-check: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) benchmarks/gpu_check.py

# Neural3DV-size scene (generated once under data/scale_n3dv/) and the velocity-aware init's time and memory
bench-scale: $(STAMP)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) benchmarks/scale_n3dv.py
