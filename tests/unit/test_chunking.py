"""Boundary-aware chunking with the real MiniLM (and tiny Qwen3) tokenizers: sizes with the prompt and special
tokens, boundaries, Markdown, CJK and emoji, a huge word, and the token ids handed to the Embedder."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from vllm_embed.ingest import Document, load_path
from vllm_embed.ingest.splitters import DocumentChunker, splitter_name

EXAMPLES = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PROMPT = "passage: "
SPECIAL = 2  # [CLS] and [SEP]


@pytest.fixture(scope="module")
def tokenizer(minilm_path: str):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def qwen3_tokenizer(tiny_qwen3_path: Path):
    return AutoTokenizer.from_pretrained(str(tiny_qwen3_path))


def prompted(text: str) -> str:
    return PROMPT + text


def model_input_length(tokenizer, chunk: str) -> int:
    """Tokens the model sees for a chunk: the prompt, the text and the special tokens."""
    return len(tokenizer(prompted(chunk), add_special_tokens=True)["input_ids"])


def chunker(tokenizer, chunk_tokens: int, overlap: int = 0, splitter=None, special: int = SPECIAL):
    return DocumentChunker(
        tokenizer,
        chunk_tokens=chunk_tokens,
        chunk_overlap=overlap,
        splitter=splitter,
        special_tokens=special,
        format_document=prompted,
    )


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=12
)
separators = st.sampled_from([" ", "\n", "\n\n", ". ", "。", "! ", "", "\n# "])


@EXAMPLES
@given(
    st.lists(st.tuples(words, separators), max_size=120),
    st.integers(6, 60),
    st.sampled_from(["text", "markdown", "tokens"]),
    st.data(),
)
def test_no_chunk_exceeds_the_limit_with_prompt_and_special_tokens(
    tokenizer, parts, chunk_tokens: int, splitter: str, data
) -> None:
    text = "".join(word + sep for word, sep in parts)
    overlap = data.draw(st.integers(0, max(0, chunk_tokens - SPECIAL - 4)))
    split = chunker(tokenizer, chunk_tokens, overlap, splitter)
    [chunks] = split.split([text])
    for chunk in chunks:
        length = model_input_length(tokenizer, chunk.text)
        single_token = len(tokenizer(chunk.text, add_special_tokens=False)["input_ids"]) == 1
        assert length <= chunk_tokens or single_token, (chunk.text, length)
        # The ids handed to the Embedder are exactly what it would compute from the text.
        assert chunk.token_ids == tokenizer(prompted(chunk.text), add_special_tokens=False)["input_ids"]

    # Nothing the model sees is lost (whitespace, and characters the tokenizer drops, aside), in order.
    def seen(part: str) -> str:
        return "".join(
            c for c in re.sub(r"\s+", "", part) if tokenizer(c, add_special_tokens=False)["input_ids"]
        )

    squeezed = seen(text)
    assert all(seen(c.text) in squeezed for c in chunks)
    if not overlap and squeezed:
        assert "".join(seen(c.text) for c in chunks) == squeezed


def test_chunks_end_at_paragraphs_then_sentences(tokenizer) -> None:
    paragraphs = [
        " ".join(f"Sentence {p}.{s} tells about the printing press and its history." for s in range(4))
        for p in range(6)
    ]
    text = "\n\n".join(paragraphs)
    one_paragraph = model_input_length(tokenizer, paragraphs[0])
    [chunks] = chunker(tokenizer, one_paragraph + 20).split([text])
    assert [c.text for c in chunks] == paragraphs  # two paragraphs never fit, one always does
    [small] = chunker(tokenizer, one_paragraph // 2 + 4).split([text])
    assert all(c.text.endswith("history.") for c in small)  # cut between sentences
    assert len(small) > len(paragraphs)


def test_markdown_headings_stay_with_their_text(tokenizer) -> None:
    sections = [
        f"## Section {i}\n\n" + " ".join(f"Point {i}.{j} about chunking Markdown files." for j in range(5))
        for i in range(5)
    ]
    text = "# Title\n\n" + "\n\n".join(sections)
    [chunks] = chunker(tokenizer, 80, splitter="markdown").split([text])
    assert len(chunks) > 1
    for chunk in chunks:
        assert not chunk.text.rstrip().splitlines()[-1].startswith("#"), chunk.text  # no heading left alone
        assert model_input_length(tokenizer, chunk.text) <= 80
    for i in range(5):
        [holder] = [c.text for c in chunks if f"## Section {i}" in c.text]
        assert f"Point {i}.0 about" in holder


def test_md_files_are_split_as_markdown_unless_told_otherwise(tmp_path: Path, tokenizer) -> None:
    (tmp_path / "guide.md").write_text("# A\n\ntext a\n\n# B\n\ntext b\n")
    (tmp_path / "plain.txt").write_text("# A\n\ntext a\n\n# B\n\ntext b\n")
    docs = sorted(load_path(tmp_path), key=lambda d: d.doc_id)
    assert [d.splitter for d in docs] == ["markdown", None]
    hints = [d.splitter for d in docs]
    texts = [d.text for d in docs]
    md, plain = chunker(tokenizer, 6 + SPECIAL + 2).split(texts, hints)
    assert [c.text for c in md] == ["# A\n\ntext a", "# B\n\ntext b"]
    assert [c.text for c in plain] != [c.text for c in md]
    forced = chunker(tokenizer, 6 + SPECIAL + 2, splitter="text").split(texts, hints)
    assert [c.text for c in forced[0]] == [c.text for c in plain]
    assert Document("x") == Document("x", splitter="markdown")  # a hint, not part of the document


def test_cjk_and_emoji_fit_and_keep_every_character(tokenizer, qwen3_tokenizer) -> None:
    text = "日本語の文章です。これは二番目の文です。" * 40 + " 🙂🚀✨ " * 60 + "한국어 문장입니다. " * 30
    for tok, special in ((tokenizer, 2), (qwen3_tokenizer, 1)):
        [chunks] = chunker(tok, 40, special=special).split([text])
        assert len(chunks) > 3
        for chunk in chunks:
            length = len(tok(prompted(chunk.text), add_special_tokens=False)["input_ids"]) + special
            assert length <= 40
        assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


def test_a_200k_character_word_is_split_quickly_and_within_the_limit(tokenizer, qwen3_tokenizer) -> None:
    word = "x" * 200_000
    started = time.perf_counter()
    [minilm] = chunker(tokenizer, 64).split([word])
    # WordPiece reads a word this long as one [UNK] token: the smallest chunk is that one token.
    assert [c.text for c in minilm] == [word]
    [qwen] = chunker(qwen3_tokenizer, 64, special=1).split([word])
    assert "".join(c.text for c in qwen) == word and len(qwen) > 100
    assert all(len(c.token_ids or ()) + 1 <= 64 for c in qwen)
    assert time.perf_counter() - started < 30


def test_a_callable_splitter_is_named_and_its_long_chunks_are_cut(tokenizer) -> None:
    def by_line(text: str) -> list[str]:
        return text.split("\n")

    assert splitter_name(by_line) == f"{__name__}.{by_line.__qualname__}"
    assert by_line.__qualname__.endswith("<locals>.by_line")
    long_line = " ".join(f"w{i}" for i in range(200))
    [chunks] = chunker(tokenizer, 32, splitter=by_line).split(["short line\n" + long_line + "\n  \n"])
    assert chunks[0].text == "short line" and len(chunks) > 2
    assert all(model_input_length(tokenizer, c.text) <= 32 for c in chunks)
    with pytest.raises(TypeError, match="must return a list of strings"):
        chunker(tokenizer, 32, splitter=lambda text: text).split(["abc"])


def test_settings_are_checked(tokenizer) -> None:
    with pytest.raises(ValueError, match="leaves no room for text"):
        chunker(tokenizer, 3)
    with pytest.raises(ValueError, match="chunk_overlap=20 must be"):
        chunker(tokenizer, 24, overlap=20)
    with pytest.raises(ValueError, match="must be one of"):
        chunker(tokenizer, 24, splitter="sentences")


def test_without_a_tokenizer_chunks_are_counted_in_characters() -> None:
    text = "First paragraph here.\n\nSecond paragraph, a bit longer than the first.\n\nThird."
    split = DocumentChunker(None, chunk_tokens=8, special_tokens=0)
    [chunks] = split.split([text])
    assert all(len(c.text) <= 32 and c.token_ids is None for c in chunks)
    assert chunks[0].text == "First paragraph here."


def large_fence_document(code_chars: int) -> str:
    line = "    total = compute(alpha, beta) + offset  # keep a running total\n"
    code = line * (code_chars // len(line))
    return f"# Title\n\nIntro text.\n\n```python\n{code}```\n\n## After the code\n\nClosing words.\n"


def test_a_large_fenced_block_never_reaches_the_markdown_splitter_whole(
    tokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """semantic-text-splitter's MarkdownSplitter is quadratic in such a block followed by a heading (531 KB:
    minutes): the block goes to the plain-text splitter on its own, the rest in bounded pieces."""
    from vllm_embed.ingest import markdown_blocks

    given: dict[str, list[str]] = {"markdown": [], "text": []}
    split_with = DocumentChunker._split_with

    def recording(self, name: str, texts: list[str]) -> list[list[str]]:
        given[name].extend(texts)
        return split_with(self, name, texts)

    monkeypatch.setattr(DocumentChunker, "_split_with", recording)
    text = large_fence_document(100_000)
    [chunks] = chunker(tokenizer, 128, splitter="markdown").split([text])

    assert given["text"] and all(piece.startswith("```python") for piece in given["text"])
    assert max(map(len, given["markdown"])) <= markdown_blocks.MARKDOWN_PIECE
    assert not any("```" in piece for piece in given["markdown"])
    assert all(model_input_length(tokenizer, c.text) <= 128 for c in chunks)
    assert chunks[0].text.startswith("# Title") and "```python" not in chunks[0].text
    assert chunks[-1].text == "## After the code\n\nClosing words."
    assert all(line in text for c in chunks for line in c.text.splitlines())  # code lines stay whole


def test_markdown_pieces_keep_the_text_and_small_fences_with_their_section() -> None:
    from vllm_embed.ingest.markdown_blocks import LARGE_FENCE, MARKDOWN_PIECE, markdown_pieces

    small = "# A\n\ntext\n\n~~~\ncode\n# not a heading inside a fence\n~~~\n\n## B\n\nmore\n"
    assert markdown_pieces(small) == [("markdown", small)]
    big_fence = "````md\n" + "```\ninner\n```\n" * (LARGE_FENCE // 10) + "````\n"
    sections = "".join(f"## S{i}\n\n" + "words " * 2000 + "\n\n" for i in range(30))
    unclosed = "```\n" + "x = 1\n" * (LARGE_FENCE // 5)
    text = small + big_fence + sections + unclosed
    pieces = markdown_pieces(text)
    assert "".join(piece for _, piece in pieces) == text
    assert [kind for kind, _ in pieces][:2] == ["markdown", "text"] and pieces[1][1] == big_fence
    assert pieces[-1] == ("text", unclosed)
    assert all(len(piece) <= MARKDOWN_PIECE for kind, piece in pieces if kind == "markdown")
    assert all(piece.startswith("## S") for kind, piece in pieces[2:-1])  # cut between sections only
