#!/usr/bin/env bash
# Creates .venv/ and installs mtlface with every dependency. Safe to re-run: when pyproject.toml
# and this script are unchanged since the last successful install, it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.mtlface-install-stamp
want=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
# This machine's pip config names local mirrors that may be absent: drop that noise, keep errors.
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored" >&2); }
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[install] installing mtlface and its dependencies into .venv (about 2 minutes)"
    pip install --upgrade pip
    pip install -e ".[dev]"
    # facenet-pytorch 2.6.0 pins torch<2.3, numpy<2, Pillow<10.3, yet its MTCNN runs on these.
    pip install --no-deps facenet-pytorch==2.6.0
    .venv/bin/python -c "import mtlface, torch, torchvision, pytorch_lightning, hydra, timm, facenet_pytorch"
    echo "$want" > "$stamp"
fi
