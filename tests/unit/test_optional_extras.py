"""With only `vllm-embed[cpu,qdrant]` installed, the CLI runs, and a command needing another extra names it.

Each case runs in a fresh interpreter where the packages of the other extras cannot be imported
(`sys.modules[name] = None` makes `import name` fail), as in an install without them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vllm_embed.sinks import Manifest, QdrantEdgeSink

ABSENT = ("pyarrow", "ray", "pymilvus", "milvus_lite", "matplotlib")

_RUN = """
import sys
for name in {absent!r}:
    sys.modules[name] = None
from vllm_embed.cli import main
main({argv!r})
"""


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    code = _RUN.format(absent=ABSENT, argv=list(argv))
    env = {**os.environ, "COLUMNS": "1000"}  # help lines unwrapped
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_the_cli_starts_without_the_other_extras(tmp_path: Path) -> None:
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("vllm-embed "), version.stderr
    for command in ([], ["ingest"], ["search"], ["collections", "info"]):
        shown = _cli(*command, "--help")
        assert shown.returncode == 0 and "Usage" in shown.stdout, shown.stderr
    assert 'pip install "vllm-embed[ray]"' in _cli("ingest", "--help").stdout
    store = tmp_path / "edge"
    with QdrantEdgeSink("docs", path=str(store)) as sink:
        sink.prepare(Manifest.from_description({"model": "some-model", "dimensions": 4}))
    info = _cli("collections", "info", "--qdrant-edge", str(store), "--json")
    assert info.returncode == 0, info.stderr
    assert [c["name"] for c in json.loads(info.stdout)] == ["docs"]
    details = _cli("collections", "info", "--qdrant-edge", str(store), "-c", "docs")
    assert details.returncode == 0 and "None" not in details.stdout, details.stdout


@pytest.mark.parametrize(
    ("extra", "flags"),
    [("ray", ["--ray", "local"]), ("milvus", ["--milvus", "m.db"]), ("parquet", [])],
)
def test_a_command_needing_a_missing_extra_names_its_install(
    extra: str, flags: list[str], tmp_path: Path
) -> None:
    corpus = tmp_path / ("c.parquet" if extra == "parquet" else "c.jsonl")
    corpus.write_text('{"text": "one"}\n')
    store = [] if extra == "milvus" else ["--qdrant-edge", str(tmp_path / "edge")]
    failed = _cli("ingest", str(corpus), "-m", "some-model", "-c", "docs", *store, *flags)
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), failed.stderr
    assert f'pip install "vllm-embed[{extra}]"' in lines[0]


def test_the_ray_package_names_its_extra() -> None:
    code = "import sys\nsys.modules['ray'] = None\nimport vllm_embed.ray_data"
    failed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "MissingDependencyError" in failed.stderr
    assert 'pip install "vllm-embed[ray]"' in failed.stderr
