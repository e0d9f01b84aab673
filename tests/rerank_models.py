"""A realistic-size cross-encoder for tests and benchmarks: all-MiniLM-L6-v2's BERT plus a random head."""

from __future__ import annotations

from pathlib import Path


def build_minilm_cross_encoder(minilm_path: str | Path, out: str | Path, *, seed: int = 0) -> Path:
    """Saves a sentence-transformers `CrossEncoder` (one label) built from MiniLM's encoder weights.

    The classification head (pooler and classifier) is random but fixed by `seed`, so scores are reproducible.
    """
    import torch
    from sentence_transformers import CrossEncoder

    target = Path(out)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CrossEncoder(str(minilm_path), num_labels=1, device="cpu")
        # Wider than BERT's 0.02 initialisation, so that scores spread out instead of all sitting at 0.5.
        head = model.model.classifier
        torch.nn.init.normal_(head.weight, std=1.0)
        torch.nn.init.zeros_(head.bias)
    model.save_pretrained(str(target))
    return target
