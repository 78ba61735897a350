#!/usr/bin/env bash
# Prepare here (where PyPI is reachable) what gpu_check.sh needs on the GPU machine. Fetch the wheels gpu_check.sh installs on the GPU machine (Python 3.12, x86_64),
# into .whl/ (ignored through .git/info/exclude): what klong needs beyond the GPU image's packages, at the versions
# installed in this checkout's .venv, plus TRL for the SFT baseline.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
pins=()
for name in pydantic pydantic_core annotated-types typing-inspection openai distro jiter sniffio pypdfium2 arxiv \
            feedparser sgmllib3k datasets dill multiprocess; do
  version=$(.venv/bin/python -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p' || true)
  if [ -n "$version" ]; then pins+=("$name==$version"); fi
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}" "trl${TRL_VERSION:+==$TRL_VERSION}"
# the tests' tokenizer (../shared does not travel to the GPU machine): carry .gpu_shared too
grep -qx '/.gpu_shared/' .git/info/exclude || echo '/.gpu_shared/' >> .git/info/exclude
mkdir -p .gpu_shared/tokenizers && cp -r ../shared/data/tokenizers/qwen2.5 .gpu_shared/tokenizers/
du -sh .whl .gpu_shared && ls .whl
