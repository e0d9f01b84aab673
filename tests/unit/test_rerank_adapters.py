"""`vllm_embed.adapters.RerankerAdapter` on a framework-free adapter: settings, `reranker=`, lazy engine."""

from __future__ import annotations

import threading

import pytest
from fake_reranker import FakeReranker

from vllm_embed import RerankerConfig
from vllm_embed.adapters import RERANKER_SETTINGS, LazyReranker, RerankerAdapter, reranker_model_field
from vllm_embed.adapters import lazy as lazy_module
from vllm_embed.adapters.rerank import RerankerSettings


class FakeAdapter(RerankerAdapter):
    """A reranker adapter with no framework, its model field under another name."""

    _model_field = "model_id"

    model_id: str | None = reranker_model_field()


def test_every_setting_but_the_model_is_declared_once_for_the_adapters() -> None:
    assert set(RerankerConfig.model_fields) == {"model", *RerankerSettings.model_fields}
    assert set(RerankerSettings.model_fields) == RERANKER_SETTINGS
    assert set(FakeAdapter.model_fields) >= RERANKER_SETTINGS
    assert all(field.description for field in RerankerConfig.model_fields.values())
    for name, field in RerankerSettings.model_fields.items():  # derived from RerankerConfig, not restated
        declared = RerankerConfig.model_fields[name]
        assert (field.annotation, field.description) == (declared.annotation, declared.description), name
        assert field.get_default(call_default_factory=True) == declared.get_default(call_default_factory=True)
    assert (FakeAdapter.model_fields["model_id"].description or "").startswith(
        RerankerConfig.model_fields["model"].description or "?"
    )


def test_construction_builds_the_config_and_no_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    monkeypatch.setattr(lazy_module, "Reranker", lambda **kwargs: built.append(kwargs))
    adapter = FakeAdapter(model_id="m", max_model_len=512, engine_kwargs={"enforce_eager": True})
    assert adapter.reranker_config == RerankerConfig(
        model="m", max_model_len=512, engine_kwargs={"enforce_eager": True}
    )
    assert built == []
    with pytest.raises(ValueError, match=r"FakeAdapter needs a model: FakeAdapter\(model_id="):
        FakeAdapter()
    with pytest.raises(ValueError, match="max_model_len"):
        FakeAdapter(model_id="m", max_model_len=0)
    with pytest.raises(ValueError, match="unknown_setting"):
        FakeAdapter(model_id="m", unknown_setting=1)  # type: ignore[call-arg]


def test_the_api_key_goes_to_the_remote_backend_only() -> None:
    assert FakeAdapter(model_id="m", api_key="secret").reranker_config.api_key is None
    remote = FakeAdapter(model_id="m", backend="openai", base_url="http://127.0.0.1:9/v1", api_key="secret")
    assert remote.reranker_config.api_key is not None
    assert remote.reranker_config.api_key.get_secret_value() == "secret"
    assert "secret" not in repr(remote)


def test_a_key_in_base_url_moves_to_api_key() -> None:
    adapter = FakeAdapter(model_id="m", backend="openai", base_url="http://user:SECRET@127.0.0.1:9/v1")
    assert "SECRET" not in repr(adapter) and "SECRET" not in str(adapter.model_dump())
    assert adapter.base_url == adapter.reranker_config.base_url == "http://127.0.0.1:9/v1"
    assert adapter.api_key is not None and adapter.api_key.get_secret_value() == "SECRET"
    assert adapter.reranker_config.api_key == adapter.api_key


def test_a_reranker_excludes_every_setting_and_is_left_open() -> None:
    fake = FakeReranker()
    adapter = FakeAdapter(reranker=fake)
    assert adapter.get_reranker() is fake and adapter.model_id == "fake-reranker"
    assert adapter.reranker_config is fake.config
    assert FakeAdapter(reranker=fake, model_id="fake-reranker").get_reranker() is fake
    with pytest.raises(ValueError, match=r"\(got backend, instruction\)"):
        FakeAdapter(reranker=fake, instruction="Find code", backend="openai")
    with pytest.raises(ValueError, match=r"\(got model_id\)"):
        FakeAdapter(reranker=fake, model_id="other")
    adapter.close()
    assert not fake.fake_closed


def test_rerank_texts_returns_python_floats_best_first_and_skips_empty_lists() -> None:
    fake = FakeReranker()
    adapter = FakeAdapter(reranker=fake)
    ranked = adapter.rerank_texts("bake bread", ["bikes and oil", "bread to bake", "bread"], top_n=2)
    assert [index for index, _ in ranked] == [1, 2]
    assert all(type(score) is float for _, score in ranked)
    assert fake.calls == [("rerank", ("bake bread", ["bikes and oil", "bread to bake", "bread"], 2))]
    assert adapter.rerank_texts("q", [], top_n=None) == []
    assert len(fake.calls) == 1


async def test_arerank_texts_awaits_the_async_api() -> None:
    fake = FakeReranker()
    adapter = FakeAdapter(reranker=fake)
    ranked = await adapter.arerank_texts("bake bread", ("bikes", "bread to bake"), top_n=None)
    assert ranked == adapter.rerank_texts("bake bread", ["bikes", "bread to bake"], top_n=None)
    assert [name for name, _ in fake.calls] == ["arerank", "rerank"]
    assert await adapter.arerank_texts("q", [], top_n=1) == []


def test_lazy_reranker_builds_once_on_first_use_and_closes_what_it_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[FakeReranker] = []

    def build(*, config: RerankerConfig) -> FakeReranker:
        built.append(FakeReranker(config.model))
        return built[-1]

    monkeypatch.setattr(lazy_module, "Reranker", build)
    lazy = LazyReranker(RerankerConfig(model="m"))
    assert lazy.config.model == "m" and built == []
    threads = [threading.Thread(target=lazy.get) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and lazy.get() is built[0]
    lazy.close()
    assert built[0].fake_closed
    with pytest.raises(ValueError, match="exactly one"):
        LazyReranker()
    with pytest.raises(ValueError, match="exactly one"):
        LazyReranker(RerankerConfig(model="m"), reranker=FakeReranker())


async def test_lazy_reranker_aget_builds_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []

    def build(*, config: RerankerConfig) -> FakeReranker:
        threads.append(threading.current_thread().name)
        return FakeReranker(config.model)

    monkeypatch.setattr(lazy_module, "Reranker", build)
    lazy = LazyReranker(RerankerConfig(model="m"))
    first = await lazy.aget()
    assert await lazy.aget() is first and threads != [threading.current_thread().name]
    given = FakeReranker()
    assert await LazyReranker(reranker=given).aget() is given
