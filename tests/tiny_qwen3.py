"""A tiny, random Qwen3 embedding model built on disk, plus a plain-transformers reference.

`build_tiny_qwen3` writes a directory laid out like a real Qwen3-Embedding checkpoint
(``Qwen3ForCausalLM`` weights, a fast tokenizer whose post-processor appends ``<|endoftext|>``,
and the sentence-transformers module files for last-token pooling + normalisation), but with a
64-wide, 2-layer random network so vLLM can load it on a CPU in tests without any download.

`reference_embeddings` computes what a correct embedding engine must return for that model:
the final hidden state of the last token (the appended EOS), optionally truncated to a
Matryoshka dimension, then L2-normalised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

EOS_TOKEN = "<|endoftext|>"
HIDDEN_SIZE = 64
HEAD_DIM = 32  # vLLM's CPU attention only supports some head sizes (32, 64, 80, 96, 112, 128, ...)
NUM_LAYERS = 2
NUM_HEADS = 2
NUM_KV_HEADS = 1
INTERMEDIATE_SIZE = 128
MAX_POSITIONS = 512
# Wider than the usual 0.02 so that the context actually moves the last-token state:
# with tiny weights every text would embed to almost the same vector (that of the EOS token).
INITIALIZER_RANGE = 0.2
TOKENIZER_VOCAB_TARGET = 1024

_CORPUS = """
Instruct: Given a web search query, retrieve relevant passages that answer the query
Query: what is the capital of France?
Document: Paris is the capital and most populous city of France.
Represent this sentence for searching relevant passages:
search_query: search_document: passage: query:
The quick brown fox jumps over the lazy dog.
Hello world! hello World, HELLO WORLD.
A vector database stores embeddings and answers nearest neighbour queries.
Qdrant and Milvus are vector databases; vLLM is an inference engine.
Machine learning models turn text into dense vectors called embeddings.
Cosine similarity compares the angle between two vectors.
The cat sat on the mat. The dog ran in the park. Birds fly in the sky.
Water boils at one hundred degrees Celsius at sea level.
The sun rises in the east and sets in the west.
Python is a programming language. Rust is fast and safe.
How do I bake bread? Mix flour, water, salt and yeast, then bake it in an oven.
Who wrote Hamlet? William Shakespeare wrote Hamlet and many other plays.
numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14
apple banana cherry orange grape lemon lime mango peach pear plum
red green blue yellow black white purple pink brown grey
one two three four five six seven eight nine ten first second third last
music science history geography mathematics physics chemistry biology art sport
car train plane boat bicycle road city country river mountain ocean forest
good bad big small new old long short high low fast slow hot cold
"""


def _build_tokenizer(extra_special: tuple[str, ...] = (), append_eos: bool = True) -> Any:
    """Train a small byte-level BPE in-process (deterministic); every byte string is encodable."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_TARGET,
        min_frequency=1,
        special_tokens=[EOS_TOKEN, *extra_special],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in _CORPUS.splitlines() if line.strip()]
    tok.train_from_iterator(lines, trainer=trainer)
    eos_id = tok.token_to_id(EOS_TOKEN)
    if not append_eos:
        return tok
    # Like Qwen3-Embedding: every sequence gets EOS appended, which last-token pooling reads.
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A:0 {EOS_TOKEN}:0",
        pair=f"$A:0 {EOS_TOKEN}:0 $B:1 {EOS_TOKEN}:1",
        special_tokens=[(EOS_TOKEN, eos_id)],
    )
    return tok


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def build_tiny_qwen3(
    path: str | Path,
    *,
    seed: int = 0,
    query_prompt: str | None = None,
    extra_special: tuple[str, ...] = (),
    added_tokens: tuple[str, ...] = (),
    embedding_files: bool = True,
) -> Path:
    """Write a tiny random Qwen3 embedding checkpoint into ``path`` and return it.

    ``extra_special`` and ``added_tokens`` extend the vocabulary; ``embedding_files=False`` leaves out the
    sentence-transformers files and the tokenizer's appended EOS (a plain causal LM, e.g. a reranker).
    """
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)

    # -- tokenizer ---------------------------------------------------------------------------
    backend = _build_tokenizer(extra_special, append_eos=embedding_files)
    if added_tokens:
        backend.add_tokens(list(added_tokens))
    eos_id = backend.token_to_id(EOS_TOKEN)
    hf_tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,
        model_max_length=MAX_POSITIONS,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    hf_tok.save_pretrained(str(out))
    # Pin the class so AutoTokenizer loads tokenizer.json as-is (a generic fast tokenizer) rather
    # than mapping model_type "qwen3" to Qwen2Tokenizer.
    tok_cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding="utf-8"))
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    _write_json(tok_cfg_path, tok_cfg)

    # -- model -------------------------------------------------------------------------------
    vocab_size = -(-backend.get_vocab_size(with_added_tokens=True) // 64) * 64
    config = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_LAYERS,
        num_attention_heads=NUM_HEADS,
        num_key_value_heads=NUM_KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=INITIALIZER_RANGE,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
        tie_word_embeddings=True,
        attention_bias=False,
        use_sliding_window=False,
        max_window_layers=NUM_LAYERS,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        # No pad_token_id: Qwen3Model would make it the embedding's padding_idx and zero that row,
        # and the pad token is the EOS that last-token pooling reads (the empty text would embed to 0).
        pad_token_id=None,
        architectures=["Qwen3ForCausalLM"],
        dtype="float32",
    )
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # parameters are created in the default dtype
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Qwen3ForCausalLM(config)  # type: ignore[no-untyped-call]
    finally:
        torch.set_default_dtype(previous_dtype)
    model.save_pretrained(str(out), safe_serialization=True)
    if not embedding_files:
        return out

    # -- sentence-transformers files --------------------------------------------------------
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": HIDDEN_SIZE,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": True,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_POSITIONS, "do_lower_case": False})
    prompts = {"query": query_prompt, "document": ""} if query_prompt is not None else {}
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )
    return out


def reference_embeddings(path: str | Path, texts: list[str], dimensions: int | None = None) -> np.ndarray:
    """Last-token embeddings of ``texts`` computed with plain transformers, float32, shape (n, d)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModel.from_pretrained(str(path), dtype=torch.float32).eval()
    width = int(model.config.hidden_size) if dimensions is None else dimensions
    if not 0 < width <= int(model.config.hidden_size):
        raise ValueError(f"dimensions must be in 1..{model.config.hidden_size}, got {dimensions}")
    out = np.zeros((len(texts), width), dtype=np.float32)
    with torch.no_grad():
        for i, text in enumerate(texts):
            ids = tok(text, truncation=True, max_length=MAX_POSITIONS)["input_ids"]
            hidden = model(input_ids=torch.tensor([ids], dtype=torch.long)).last_hidden_state
            vec = hidden[0, -1, :width].to(torch.float32).numpy()
            out[i] = vec / max(float(np.linalg.norm(vec)), 1e-12)
    return out


# -- a tiny Qwen3-Reranker -----------------------------------------------------------------------

RERANKER_SPECIAL = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")


def build_tiny_qwen3_reranker(path: str | Path, *, seed: int = 1) -> Path:
    """Write a tiny random Qwen3-Reranker-shaped checkpoint: a Qwen3 causal LM whose tokenizer has the chat
    template's special tokens and single "yes" / "no" tokens."""
    return build_tiny_qwen3(
        path, seed=seed, extra_special=RERANKER_SPECIAL, added_tokens=("yes", "no"), embedding_files=False
    )


def reference_rerank_scores(
    path: str | Path, query: str, documents: list[str], instruction: str | None = None
) -> np.ndarray:
    """P("yes") per document as Qwen3-Reranker's model card computes it, in plain transformers (float32)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
        'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    task = instruction or "Given a web search query, retrieve relevant passages that answer the query"
    prefix_ids = tok.encode(prefix, add_special_tokens=False)
    suffix_ids = tok.encode(suffix, add_special_tokens=False)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    scores = np.zeros(len(documents), dtype=np.float32)
    with torch.no_grad():
        for i, doc in enumerate(documents):
            body = tok(f"<Instruct>: {task}\n<Query>: {query}\n<Document>: {doc}")["input_ids"]
            ids = torch.tensor([prefix_ids + body + suffix_ids], dtype=torch.long)
            logits = model(input_ids=ids).logits[0, -1, [no, yes]]
            scores[i] = float(torch.softmax(logits.to(torch.float32), dim=-1)[1])
    return scores
