"""Every optional import goes through `require`: a missing package names the exact extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vllm_embed import MissingDependencyError
from vllm_embed._optional import EXTRAS, install_hint, require
from vllm_embed.errors import VllmEmbedError


@pytest.mark.parametrize(("module", "extra"), [("qdrant_client", "qdrant"), ("pymilvus", "milvus")])
def test_a_sink_without_its_store_client_names_the_extra(
    module: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vllm_embed.sinks import MilvusSink, QdrantSink

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError) as failure:
        if extra == "qdrant":
            QdrantSink("d", location=":memory:")
        else:
            MilvusSink("d", uri=str(tmp_path / "m.db"))
    assert isinstance(failure.value, VllmEmbedError) and isinstance(failure.value, ImportError)
    assert f'pip install "vllm-embed[{extra}]"' in str(failure.value)
    assert "Sink needs the" in str(failure.value)


def test_require_hints() -> None:
    assert install_hint("pyarrow.parquet") == 'pip install "vllm-embed[parquet]"'
    assert install_hint("vllm").startswith('pip install "vllm-embed[cpu]"')
    assert install_hint("somethingelse") == "pip install somethingelse"
    assert EXTRAS["ray"] == "ray" and install_hint("ray.data") == 'pip install "vllm-embed[ray]"'
    with pytest.raises(MissingDependencyError, match=r"feature X needs the `no_such_module_x` package"):
        require("no_such_module_x", "feature X")
    assert require("json", "anything").dumps([]) == "[]"
