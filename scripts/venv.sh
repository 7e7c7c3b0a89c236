# Sourced by scripts/test and scripts/demo: create .venv (or $FERRYMAN_VENV) and install
# Ferryman with everything its tests need. Idempotent and quick when nothing changed.
VENV="${FERRYMAN_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.ferryman-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "installing Ferryman and its dependencies into $VENV (first run takes a few minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # The CPU build of PyTorch first, so that nothing pulls a multi-GB CUDA build. On Linux,
  # PyPI's torch 2.13.0 IS the CUDA 13 build (a 527 MB wheel that requires ~3 GB of
  # nvidia-* and cuda-toolkit wheels); the CPU build, 2.13.0+cpu, is on PyTorch's own index
  # only. So ask for +cpu by name: from a local wheel source if pip's configuration has one,
  # else from that index (FERRYMAN_TORCH_INDEX to use a mirror); never the CUDA build.
  if [ "$(uname -s)" = Linux ]; then
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0+cpu" 2>/dev/null \
      || "$VENV/bin/python" -m pip install --quiet "torch==2.13.0+cpu" \
           --extra-index-url "${FERRYMAN_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  else  # macOS and Windows wheels on PyPI are CPU builds
    "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  fi
  "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
  touch "$stamp"
fi
