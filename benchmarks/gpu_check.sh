#!/usr/bin/env bash
# One prepared GPU check (issue 14 item 3): the CUDA parity tests, then the CUDA benchmarks.
# On a machine with an NVIDIA GPU and PyTorch:   bash benchmarks/gpu_check.sh [OUT_DIR]
# MNIST / Fashion-MNIST are read from $MEMRISTIVE_DATA (default ./.gpu/data, IDX files, .gz allowed).
set -u -o pipefail
out=${1:-${OUT:-/tmp/gpu_check}}; mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 MEMRISTIVE_DATA=${MEMRISTIVE_DATA:-$PWD/.gpu/data}
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
$py -m pytest -q -p no:cacheprovider -k "cuda or gpu" tests/test_cuda.py tests/test_cost.py tests/test_core.py 2>&1 | tail -15 | tee "$out/pytest_cuda.txt"
timeout 120 $py benchmarks/bench_cnn.py --device cuda --images 10000 --adc-images 1000 --trials 100 --batch 100 --repeats 3 2>&1 | tee "$out/bench_cnn_cuda.txt"
timeout 60 $py benchmarks/bench_inference.py --device cuda --threads 1 --repeats 5 2>&1 | tail -12 | tee "$out/bench_inference_cuda.txt"
