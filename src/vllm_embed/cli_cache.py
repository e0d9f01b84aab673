"""Moved to `vllm_embed.cli.cache`; kept so that `from vllm_embed.cli_cache import cache_app` still works."""

from vllm_embed.cli.cache import cache_app

__all__ = ["cache_app"]
