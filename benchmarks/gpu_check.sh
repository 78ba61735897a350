#!/usr/bin/env bash
# The prepared GPU check: one short script for a lent GPU machine (see docs/benchmarks.md for what it measured).
#
#   1. the sharded-training tests (`-m gpu`): FSDP2 (and ZeRO-3 where deepspeed is installed) through klong's own
#      SFT step give the unsharded one-process gradients;
#   2. SFT throughput at 8K and 32K windows, Qwen2-0.5B shape, bf16: klong against plain transformers and TRL.
#
# Python packages klong needs that the GPU image lacks travel as wheels in .whl/ and the tests' tokenizer in
# .gpu_shared/ (`benchmarks/gpu_wheels.sh` prepares both here); the run installs the wheels into /tmp/site. Logs go to $OUT (or ./gpu_check_out). Each part runs on its own:
# a failing part is reported and the next one runs.
#
#   here: bash benchmarks/gpu_wheels.sh;   there: bash benchmarks/gpu_check.sh   (carry: .whl, .gpu_shared)
set -uo pipefail
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader;
  python3 -c "import torch, transformers, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'accelerate', accelerate.__version__)"; } 2>&1 | tee "$OUT/device.txt"

status=0
part() {  # name, timeout seconds, command...
  local name=$1 limit=$2; shift 2
  echo "== $name" | tee -a "$OUT/summary.txt"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 8 "$OUT/$name.log" | tee -a "$OUT/summary.txt"
  echo "rc=$rc" | tee -a "$OUT/summary.txt"
  [ $rc -eq 0 ] || status=1
}

# ../shared does not travel to the GPU machine: the tests need only the Qwen2.5 tokenizer, carried in .gpu_shared
if [ -d .gpu_shared ]; then export KLONG_SHARED_DATA=$PWD/.gpu_shared; fi
part sharded_tests 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/train/test_distributed.py
part sft_8k 150 python3 benchmarks/sft_throughput.py --model qwen2-0.5b --window 8192 --steps 4 --device cuda
part sft_32k 200 python3 benchmarks/sft_throughput.py --model qwen2-0.5b --window 32768 --steps 4 --device cuda
exit $status
