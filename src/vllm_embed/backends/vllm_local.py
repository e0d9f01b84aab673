"""In-process vLLM pooling engine. The only module of vllm-embed that imports vLLM.

(Over ~500 lines because it is that only module: every call into vLLM, dense and token-level, lives here.)

vLLM's offline API changes often (`task=` became `runner=`, `normalize` became `use_activation`, truncation
moved into `tokenization_kwargs`), so every call into it lives here, written against vLLM 0.32.

One engine serves every `Embedder` (or every `Reranker`) of this process whose engine settings are identical.
A single worker thread owns it: sync and async callers hand it jobs, and the jobs that are waiting when the
engine becomes free are merged into one `encode` call, so concurrent callers share vLLM's batching. An
embedding engine runs vLLM's `embed` task; a reranking engine (`VLLMLocalScorer`) runs its `classify` task
on (query, document) token ids the `Reranker` has already built; a token-level engine (`VLLMLocalPooler`, for
`SparseEmbedder` and `MultiVectorEmbedder`) runs one task of the model's own poolers.
(A little over 500 lines: every vLLM call has to live in this one module.)
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil

from vllm_embed._logging import drain_echo, engine_output, mute_vllm_terminal
from vllm_embed._optional import require
from vllm_embed._signals import interrupted
from vllm_embed._utils import one_line
from vllm_embed.backends.base import EngineInput, PairTokens, PoolingTaskName
from vllm_embed.backends.engine_checks import (
    check_spawn_guard,
    check_torch_companions,
    interruptible,
    new_engine_processes,
    release_shared_memory,
    shared_memory_of,
    stop_processes,
)
from vllm_embed.config import EmbedderConfig, EngineSettings, LogLevel, RerankerConfig, TokenEmbedderSettings
from vllm_embed.errors import EngineStartError
from vllm_embed.profiles import ModelProfile, read_model_file
from vllm_embed.rerank_profiles import RerankerProfile

require("vllm", "The in-process vLLM backend")

with engine_output():  # vLLM's import-time notices go to the engine log
    check_torch_companions()
    import torch  # vLLM brings torch; import it only once vLLM is known to be there
    from vllm import LLM, PoolingParams
    from vllm.tasks import PoolingTask

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_GIB = 1 << 30
# Small enough that two or three engines fit beside each other on a 24 GiB CPU machine.
_MIN_CPU_KV_CACHE = 512 * _MIB
_MAX_CPU_KV_CACHE = 8 * _GIB


@dataclass
class _Job:
    prompts: list[Any]
    params: list[PoolingParams]
    task: PoolingTask = "embed"
    ragged: bool = False  # one array per input (token tasks) instead of one matrix
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


def _estimate_kv_cache_bytes(model: str, revision: str | None, max_len: int | None) -> int:
    """A KV-cache size that holds one input of `max_len` tokens with room to batch, for decoder models."""
    config = read_model_file(model, "config.json", revision) or {}
    layers = config.get("num_hidden_layers")
    heads = config.get("num_key_value_heads") or config.get("num_attention_heads")
    hidden = config.get("hidden_size")
    head_dim = config.get("head_dim") or (hidden // config["num_attention_heads"] if hidden else None)
    length = max_len or config.get("max_position_embeddings")
    if not (layers and heads and head_dim and length):
        return 2 * _GIB
    needed = int(layers * 2 * heads * head_dim * 2 * length * 1.25)  # bf16 K and V, plus headroom
    return max(_MIN_CPU_KV_CACHE, min(needed, _MAX_CPU_KV_CACHE))


def _engine_arguments(config: EmbedderConfig, profile: ModelProfile) -> dict[str, Any]:
    """Builds the `vllm.LLM` keyword arguments for an embedder configuration."""
    user = dict(config.engine_kwargs)
    hf_overrides = dict(user.pop("hf_overrides", None) or {})
    if profile.matryoshka:
        hf_overrides.setdefault("is_matryoshka", True)
    pooler_config = {"pooling_type": profile.pooling.upper(), "use_activation": True}
    named = (read_model_file(config.model, "config.json", config.revision) or {}).get("architectures")
    if named == ["BgeM3EmbeddingModel"]:  # its default task is "embed&token_classify": the dense half only
        pooler_config["task"] = "embed"
    pooler_config.update(user.pop("pooler_config", None) or {})
    return _pooling_arguments(
        config, config.max_model_len or profile.max_length, hf_overrides, pooler_config, user
    )


def _scoring_engine_arguments(config: RerankerConfig, profile: RerankerProfile) -> dict[str, Any]:
    """Builds the `vllm.LLM` keyword arguments for a reranker configuration (the model's own pooling)."""
    user = dict(config.engine_kwargs)
    hf_overrides = {**profile.hf_overrides, **(user.pop("hf_overrides", None) or {})}
    pooler_config = {"use_activation": True, **(user.pop("pooler_config", None) or {})}
    return _pooling_arguments(
        config, config.max_model_len or profile.max_length, hf_overrides, pooler_config, user
    )


def _pooling_arguments(
    config: EngineSettings,
    max_model_len: int | None,
    hf_overrides: dict[str, Any],
    pooler_config: dict[str, Any],
    user: dict[str, Any],
) -> dict[str, Any]:
    """The `vllm.LLM` keyword arguments every pooling engine shares; `user` (engine_kwargs) wins."""
    from vllm.platforms import current_platform

    model = getattr(config, "model", None)
    assert isinstance(model, str)
    arguments: dict[str, Any] = {
        "model": model,
        "runner": "pooling",
        "dtype": _cpu_dtype() if config.dtype == "auto" and current_platform.is_cpu() else config.dtype,
        "max_model_len": max_model_len,
        "tensor_parallel_size": config.tensor_parallel_size,
        "pipeline_parallel_size": config.pipeline_parallel_size,
        "trust_remote_code": config.trust_remote_code,
        "revision": config.revision,
        "hf_overrides": hf_overrides or None,
        "pooler_config": pooler_config,
    }
    if config.gpu_memory_utilization is not None:
        arguments["gpu_memory_utilization"] = config.gpu_memory_utilization
    elif (
        current_platform.is_cpu()
        and "kv_cache_memory_bytes" not in user
        and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    ):
        arguments["kv_cache_memory_bytes"] = _estimate_kv_cache_bytes(model, config.revision, max_model_len)
    arguments.update(user)
    return {key: value for key, value in arguments.items() if value is not None}


def _cpu_dtype() -> str:
    """The `"auto"` dtype on CPU: bfloat16 where the CPU computes it natively, else float32.

    vLLM's own `"auto"` follows the checkpoint (often float16), which CPUs without native half-precision
    arithmetic emulate tens of times slower than float32.
    """
    native_bf16 = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bfloat16" if native_bf16 else "float32"


_SMALL_CPU_CORES = 4


def _use_every_cpu_core(arguments: dict[str, Any]) -> None:
    """On a CPU with few cores, lets a single-rank engine compute on all of them.

    vLLM reserves one core per rank for its scheduler, which an embedding engine barely uses: on 2 cores that
    roughly halves throughput. Left alone where the user set `VLLM_CPU_NUM_OF_RESERVED_CPU` or
    `VLLM_CPU_OMP_THREADS_BIND`, on larger machines, and for multi-rank engines (whose ranks need their own
    cores).
    """
    from vllm.platforms import current_platform

    ranks = int(arguments.get("tensor_parallel_size", 1)) * int(arguments.get("pipeline_parallel_size", 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if (
        current_platform.is_cpu()
        and ranks == 1
        and cores <= _SMALL_CPU_CORES
        and "VLLM_CPU_NUM_OF_RESERVED_CPU" not in os.environ
        and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    ):
        os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = "0"
        logger.info("vllm-embed: %d CPU cores, none reserved for the vLLM scheduler", cores)


# vLLM kills its engine-core process 5 s after asking it to stop unless told otherwise; on CPU it needs a
# little longer (its worker takes about 4.5 s to exit), and a killed core leaves its shared-memory queues
# behind (`/dev/shm`, reclaimed with a warning only when this process exits).
_SHUTDOWN_TIMEOUT_SECONDS = 30.0
_INTERRUPTED_SHUTDOWN_SECONDS = 3.0


class _SharedEngine:
    """One `vllm.LLM`, the worker thread that drives it, and how many backends use it."""

    def __init__(
        self,
        key: str,
        arguments: dict[str, Any],
        task: str = "embed",
        log_level: LogLevel | None = None,
    ) -> None:
        self.key = key
        self.users = 0
        before = {child.pid for child in psutil.Process().children(recursive=True)}
        log = None
        try:
            with engine_output(log_level) as log:
                self.llm = interruptible(lambda: LLM(**arguments))
        except Exception as exc:
            stop_processes(new_engine_processes(before))
            raise EngineStartError(
                f"the vLLM engine for {arguments['model']} did not start: {one_line(exc)[:400]} "
                f"(its output is in {log})"
            ) from exc
        except BaseException:  # Ctrl-C or SIGTERM during start-up: vLLM would wait for the handshake
            mute_vllm_terminal()  # the abandoned start-up reports the processes ended under it
            stop_processes(new_engine_processes(before))
            raise
        self._processes = new_engine_processes(before)
        model_config = self.llm.llm_engine.model_config
        self.max_model_len: int = int(model_config.max_model_len)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="vllm-embed-engine", daemon=True)
        self._thread.start()
        self.native_dimension: int | None = None
        if task == "embed":
            self.native_dimension = int(self.submit(["a"], None).result().shape[1])

    def submit(
        self, inputs: Sequence[EngineInput], dimensions: int | None
    ) -> concurrent.futures.Future[npt.NDArray[np.float32]]:
        prompts = [{"prompt_token_ids": item} if isinstance(item, list) else item for item in inputs]
        job = _Job(prompts, [PoolingParams(dimensions=dimensions, use_activation=True)] * len(prompts))
        self._jobs.put(job)
        return job.future

    def submit_pairs(self, pairs: Sequence[PairTokens]) -> concurrent.futures.Future[npt.NDArray[np.float32]]:
        """Scores (query, document) token ids with the model's classifier; rows are `(1,)` activations."""
        prompts: list[Any] = [{"prompt_token_ids": list(pair.ids)} for pair in pairs]
        params = [
            PoolingParams(use_activation=True)
            if pair.second_start is None
            # What vLLM's own scoring path passes for models with token type ids (BERT).
            else PoolingParams(
                use_activation=True, extra_kwargs={"compressed_token_type_ids": pair.second_start}
            )
            for pair in pairs
        ]
        job = _Job(prompts, params, task="classify")
        self._jobs.put(job)
        return job.future

    def submit_task(
        self, inputs: Sequence[list[int]], task: PoolingTaskName
    ) -> concurrent.futures.Future[list[npt.NDArray[np.float32]]]:
        """Runs one of the model's pooling tasks on token ids; the result holds one array per input."""
        prompts: list[Any] = [{"prompt_token_ids": list(ids)} for ids in inputs]
        job = _Job(prompts, [PoolingParams(use_activation=True)] * len(prompts), task=task, ragged=True)
        self._jobs.put(job)
        return job.future

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while True:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            live = [j for j in batch if j.future.set_running_or_notify_cancel()]
            for task in dict.fromkeys(j.task for j in live):
                self._run([j for j in live if j.task == task])

    def _run(self, jobs: list[_Job]) -> None:
        try:
            self._encode_into(jobs)
        except Exception as exc:  # noqa: BLE001 - isolate the failing job, then report to its caller only
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            for job in jobs:
                try:
                    self._encode_into([job])
                except Exception as single_exc:  # noqa: BLE001
                    job.future.set_exception(single_exc)

    def _encode_into(self, jobs: list[_Job]) -> None:
        prompts = [prompt for job in jobs for prompt in job.prompts]
        if not prompts:
            for job in jobs:
                job.future.set_result(np.zeros((0, 0), dtype=np.float32))
            return
        every = [params for job in jobs for params in job.params]
        same = all(params is every[0] or params == every[0] for params in every)
        outputs = self.llm.encode(
            prompts, pooling_params=every[0] if same else every, pooling_task=jobs[0].task, use_tqdm=False
        )
        start = 0
        for job in jobs:
            rows = outputs[start : start + len(job.prompts)]
            start += len(job.prompts)
            if job.ragged:
                result: Any = [row.outputs.data.to(torch.float32).numpy() for row in rows]
            elif rows:
                result = torch.stack([row.outputs.data for row in rows]).to(torch.float32).numpy()
            else:
                result = np.zeros((0, 0), dtype=np.float32)
            if not job.future.done():
                job.future.set_result(result)

    def shutdown(self) -> None:
        # After Ctrl-C or SIGTERM the user waits: a short grace period, no wait for a batch in flight (it
        # fails as the engine stops, and says so in vLLM's log only).
        fast = interrupted()
        segments = shared_memory_of(self._processes)
        self._jobs.put(None)
        mute_vllm_terminal()  # its shutdown notices (slow workers, force kills) are for the log file only
        if not fast:
            self._thread.join()
        try:
            self.llm.llm_engine.engine_core.shutdown(
                timeout=_INTERRUPTED_SHUTDOWN_SECONDS if fast else _SHUTDOWN_TIMEOUT_SECONDS
            )
        except Exception:
            logger.debug("vLLM engine shutdown raised", exc_info=True)
        del self.llm
        _, lingering = psutil.wait_procs(
            self._processes, timeout=_INTERRUPTED_SHUTDOWN_SECONDS if fast else 10
        )
        stop_processes(lingering)
        release_shared_memory(segments)
        drain_echo()


_ENGINES: dict[str, _SharedEngine] = {}
_ENGINES_LOCK = threading.Lock()


def _acquire(
    arguments: dict[str, Any], task: str = "embed", log_level: LogLevel | None = None
) -> _SharedEngine:
    key = json.dumps({"task": task, **arguments}, sort_keys=True, default=repr)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            check_spawn_guard()
            _use_every_cpu_core(arguments)
            engine = _SharedEngine(key, arguments, task, log_level)
            _ENGINES[key] = engine
        engine.users += 1
        return engine


def _release(engine: _SharedEngine) -> None:
    with _ENGINES_LOCK:
        engine.users -= 1
        if engine.users > 0 or _ENGINES.get(engine.key) is not engine:
            return  # still in use, or already stopped at interpreter exit
        del _ENGINES[engine.key]
    engine.shutdown()


@atexit.register
def _shutdown_all() -> None:
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.shutdown()


def running_engines() -> int:
    """Returns how many vLLM engines this process holds (for tests and diagnostics)."""
    with _ENGINES_LOCK:
        return len(_ENGINES)


class VLLMLocalBackend:
    """Runs the model in this process with vLLM's pooling runner.

    Args:
        config: The embedder configuration (engine settings are read from it).
        profile: The model profile (pooling and Matryoshka support decide engine settings).
    """

    accepts_token_ids = True

    def __init__(self, config: EmbedderConfig, profile: ModelProfile) -> None:
        self._engine: _SharedEngine | None = _acquire(
            _engine_arguments(config, profile), log_level=config.log_level
        )
        self.native_dimension: int | None = self._engine.native_dimension
        self.max_model_len: int | None = self._engine.max_model_len

    def _live_engine(self) -> _SharedEngine:
        if self._engine is None:
            raise RuntimeError("this Embedder is closed; create a new one")
        return self._engine

    def embed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> npt.NDArray[np.float32]:
        """Embeds inputs on the shared engine, blocking until done."""
        return self._live_engine().submit(inputs, dimensions).result()

    async def aembed(self, inputs: Sequence[EngineInput], dimensions: int | None) -> npt.NDArray[np.float32]:
        """Embeds inputs on the shared engine without blocking the event loop."""
        return await asyncio.wrap_future(self._live_engine().submit(inputs, dimensions))

    def close(self) -> None:
        """Stops using the engine; the last user shuts it and its worker processes down."""
        engine, self._engine = self._engine, None
        if engine is not None:
            _release(engine)


class VLLMLocalScorer:
    """Scores (query, document) pairs in this process with vLLM's pooling runner and the model's classifier.

    Args:
        config: The reranker configuration (engine settings are read from it).
        profile: The reranker profile (its `hf_overrides`, e.g. Qwen3-Reranker's, decide how vLLM loads it).
    """

    accepts_token_ids = True

    def __init__(self, config: RerankerConfig, profile: RerankerProfile) -> None:
        self._engine: _SharedEngine | None = _acquire(
            _scoring_engine_arguments(config, profile), "classify", config.log_level
        )
        self.max_model_len: int | None = self._engine.max_model_len

    def _live_engine(self) -> _SharedEngine:
        if self._engine is None:
            raise RuntimeError("this Reranker is closed; create a new one")
        return self._engine

    def score_tokens(self, pairs: Sequence[PairTokens]) -> npt.NDArray[np.float32]:
        """Scores pairs on the shared engine, blocking until done; shape `(len(pairs),)`."""
        return _flat(self._live_engine().submit_pairs(pairs).result(), len(pairs))

    async def ascore_tokens(self, pairs: Sequence[PairTokens]) -> npt.NDArray[np.float32]:
        """Scores pairs on the shared engine without blocking the event loop."""
        return _flat(await asyncio.wrap_future(self._live_engine().submit_pairs(pairs)), len(pairs))

    def close(self) -> None:
        """Stops using the engine; the last user shuts it and its worker processes down."""
        engine, self._engine = self._engine, None
        if engine is not None:
            _release(engine)


def _flat(matrix: npt.NDArray[np.float32], count: int) -> npt.NDArray[np.float32]:
    if count and matrix.shape != (count, 1):
        raise ValueError(
            f"the model returned {matrix.shape[1:]} values per pair, expected one: a reranker needs a "
            "single-label classifier (num_labels=1)"
        )
    return matrix.reshape(count).astype(np.float32, copy=False)


class VLLMLocalPooler:
    """Runs the model's own poolers (SPLADE, ColBERT, BGE-M3) in this process on token ids.

    A vLLM engine runs the one pooling task it was started for, so token-level embedders share an engine
    when model, engine settings and task are identical (a BGE-M3 `SparseEmbedder` and `MultiVectorEmbedder`
    need two).

    Args:
        config: The embedder configuration (engine settings are read from it).
        task: The pooling task the engine runs.
        architecture: The vLLM architecture to run the model as (BGE-M3's files name another).
    """

    def __init__(self, config: TokenEmbedderSettings, task: PoolingTaskName, architecture: str) -> None:
        user = dict(config.engine_kwargs)
        arguments = _pooling_arguments(
            config,
            config.max_model_len,
            {"architectures": [architecture], **(user.pop("hf_overrides", None) or {})},
            {"task": task, "use_activation": True, **(user.pop("pooler_config", None) or {})},
            user,
        )
        # Not "embed": that would probe a dense width (the task is in `arguments` and so in the key).
        self._engine: _SharedEngine | None = _acquire(arguments, "pool", config.log_level)
        self._task = task
        self.max_model_len: int | None = self._engine.max_model_len

    def _live_engine(self) -> _SharedEngine:
        if self._engine is None:
            raise RuntimeError("this embedder is closed; create a new one")
        return self._engine

    def pool(self, inputs: Sequence[list[int]]) -> list[npt.NDArray[np.float32]]:
        """Runs the task on the shared engine, blocking until done."""
        result: list[npt.NDArray[np.float32]] = self._live_engine().submit_task(inputs, self._task).result()
        return result

    async def apool(self, inputs: Sequence[list[int]]) -> list[npt.NDArray[np.float32]]:
        """Runs the task on the shared engine without blocking the event loop."""
        return await asyncio.wrap_future(self._live_engine().submit_task(inputs, self._task))

    def close(self) -> None:
        """Stops using the engine; the last user shuts it and its worker processes down."""
        engine, self._engine = self._engine, None
        if engine is not None:
            _release(engine)
