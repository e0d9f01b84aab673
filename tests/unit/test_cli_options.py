"""CLI flags: Embedder flags derived from `EmbedderConfig`, help as a new user reads it, global options."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from typing import Any, Literal

import pytest
import typer
from cli_helpers import run
from pydantic import BaseModel, ConfigDict, Field
from typer.main import get_command
from typer.testing import CliRunner

from vllm_embed import __version__, cli
from vllm_embed.cli.engine_options import NOT_FLAGS, EngineSettings, embedder_options, flag_name
from vllm_embed.config import EmbedderConfig
from vllm_embed.sinks.layouts import LAYOUTS

HELP_PAGES = [[], ["ingest"], ["search"], ["serve"], ["cache"], ["cache", "info"], ["cache", "clear"]]


def options_of(*command: str) -> dict[str, Any]:
    """The click parameters of a command, by their long flag."""
    group: Any = get_command(cli.app)
    for name in command:
        group = group.commands[name]
    return {opt: param for param in group.params for opt in param.opts if opt.startswith("--")}


def help_page(*command: str) -> str:
    code, out, err = run(*command, "--help", COLUMNS="200")
    assert code == 0, err
    return out


@pytest.mark.parametrize("command", ["ingest", "search", "serve"])
def test_every_embedder_setting_is_a_flag_unless_listed_with_a_reason(command: str) -> None:
    skipped = {"ingest": {"query_instruction"}, "search": {"dimensions"}, "serve": {"dimensions"}}[command]
    options = options_of(command)
    for field in EmbedderConfig.model_fields.keys() - NOT_FLAGS.keys() - skipped:
        assert flag_name(field) in options, field


def test_every_embedder_flag_has_the_fields_description_as_help() -> None:
    """Needs the descriptions in `EmbedderConfig.model_fields` (attribute docstrings read by pydantic)."""
    options = options_of("search") | options_of("ingest")
    missing = [
        field
        for field in EmbedderConfig.model_fields.keys() - NOT_FLAGS.keys()
        if not (options[flag_name(field)].help or "").strip()
    ]
    assert missing == []


def test_flags_take_the_defaults_of_the_config() -> None:
    options = options_of("search") | options_of("ingest")
    for field, info in EmbedderConfig.model_fields.items():
        if field not in NOT_FLAGS and not info.is_required() and field != "cache":
            assert options[flag_name(field)].default == info.default, field
    assert options["--timeout"].default == EmbedderConfig.model_fields["timeout"].default
    assert options["--retry-seconds"].default == EmbedderConfig.model_fields["retry_seconds"].default
    assert "-m" in options["--model"].opts and options["--model"].required


def test_timeout_retry_seconds_and_cache_flags_reach_the_config(tmp_path, monkeypatch) -> None:
    seen: list[EmbedderConfig] = []

    def record(config: EmbedderConfig) -> None:
        seen.append(config)
        raise typer.Exit(3)

    monkeypatch.setattr(cli, "make_embedder", record)
    corpus = tmp_path / "c.txt"
    corpus.write_text("some text")
    args = ["ingest", str(corpus), "-m", "m", "-c", "c", "--qdrant", str(tmp_path / "q")]
    code, _, err = run(
        *args, "--timeout", "2", "--retry-seconds", "5", "--backend", "openai", "--cache", "user"
    )
    assert code == 3, err
    assert (seen[0].timeout, seen[0].retry_seconds, seen[0].backend, seen[0].cache) == (2, 5, "openai", True)

    code, _, err = run(*args, "--timeout", "0")
    assert code == 1 and err.startswith("error: timeout:") and len(err.strip().splitlines()) == 1, err


class FakeSettings(BaseModel):
    """A settings model with one new field of each kind, as a future `EmbedderConfig` might grow."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    model: str
    """The model."""
    speed: float = Field(default=1.5, ge=0, le=10)
    """How fast, in `units` [per second]."""
    mode: Literal["fast", "exact"] = "exact"
    workers: int | None = None
    """Worker count \\[default: one per core]."""


def test_a_new_setting_becomes_a_flag_with_its_help_default_and_checks() -> None:
    app = typer.Typer()
    received: list[EngineSettings] = []

    @app.command()
    @embedder_options(config=FakeSettings)
    def command(name: str, settings: EngineSettings, loud: bool = False) -> None:
        received.append(settings | {"name": name, "loud": loud})

    runner = CliRunner()
    result = runner.invoke(app, ["x", "--model", "m", "--speed", "2.5", "--mode", "fast"])
    assert result.exit_code == 0, result.output
    assert received == [
        {"model": "m", "speed": 2.5, "mode": "fast", "workers": None, "name": "x", "loud": False}
    ]

    page = runner.invoke(app, ["--help"], env={"COLUMNS": "200"}).stdout
    assert "How fast, in units [per second]. [default: 1.5]" in page  # brackets kept, backticks dropped
    assert "<fast|exact>" in page and "[default: exact]" in page and "--workers" in page
    assert runner.invoke(app, ["x", "--model", "m", "--speed", "11"]).exit_code == 2
    assert runner.invoke(app, ["x", "--model", "m", "--mode", "slow"]).exit_code == 2


def test_a_setting_without_a_flag_form_must_be_listed() -> None:
    class FakeWithDict(BaseModel):
        model: str
        extra: dict[str, int] = {}

    def command(settings: EngineSettings) -> None: ...

    with pytest.raises(TypeError, match="NOT_FLAGS"):
        embedder_options(config=FakeWithDict)(command)


@pytest.mark.parametrize("command", HELP_PAGES, ids=" ".join)
def test_help_pages_keep_their_bracketed_text_and_show_no_markup(command: list[str]) -> None:
    page = help_page(*command)
    assert "\\[" not in page and "[/" not in page and "[bold" not in page
    assert not re.search(r"\s\.\s", page), "a bracketed note vanished before a full stop"


def test_ingest_help_shows_defaults_and_notes() -> None:
    page = help_page("ingest")
    for text in [
        "[default: 512, or the model's limit if lower]",
        "[default: markdown for .md files, else text]",
        "[default: 'id' when present]",
        "[default: the collection's, else vllm-embed]",
        "[default: 256]",
        "[default: error]",
        "[default: 60.0]",
        "[default: 30.0]",
        "--max-document-bytes",
        "--json",
        "<" + "|".join(LAYOUTS) + ">",
    ]:
        assert text in page, text


def test_search_and_cache_help_keep_their_default_notes() -> None:
    assert "[default: the one in the collection's manifest; another one is refused]" in help_page("search")
    assert "[default: the per-user cache used by --cache user]" in help_page("cache", "info")


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out == f"vllm-embed {__version__}\n"
    module = subprocess.run(
        [sys.executable, "-m", "vllm_embed.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0 and module.stdout == out


def test_log_level_reaches_the_engine_and_vllm_embed(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.delenv("VLLM_EMBED_LOG_LEVEL", raising=False)  # restored after the test
    ours = logging.getLogger("vllm_embed")
    monkeypatch.setattr(ours, "level", ours.level)
    monkeypatch.setattr(ours, "handlers", list(ours.handlers))
    vllm_logger = logging.getLogger("vllm")
    monkeypatch.setattr(vllm_logger, "level", vllm_logger.level)
    code, _, err = run("--log-level", "debug", "cache", "info", "--path", str(tmp_path / "c.sqlite"))
    assert code == 0, err
    assert os.environ["VLLM_EMBED_LOG_LEVEL"] == "debug" and ours.level == logging.DEBUG

    code, _, err = run("--quiet", "cache", "info", "--path", str(tmp_path / "c.sqlite"))
    assert code == 0 and os.environ["VLLM_EMBED_LOG_LEVEL"] == "warning" and ours.level == logging.WARNING

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--log-level", "loud", "cache", "info"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "'loud' is not one of 'debug', 'info', 'warning', 'error'" in err
