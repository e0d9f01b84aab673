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

. scripts/engine-install.sh
torch_index_args

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

remove_broken_torch_extras

"$VENV/bin/python" -c 'import vllm_embed, vllm; print(f"[setup] ok: vllm-embed {vllm_embed.__version__}, vLLM {vllm.__version__}")'
echo "$fingerprint" > "$STAMP"
