"""`python -m vllm_embed.cli`: the `vllm-embed` command."""

from vllm_embed.cli import main

main()
