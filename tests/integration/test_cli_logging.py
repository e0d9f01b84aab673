"""`--quiet` / `--log-level` reach vLLM's own log lines: vLLM configures its logging from the environment
when an engine is built (in each of its processes), as `LoggingConfig()` does here."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

LOG_BOTH = (
    "from vllm.config.logging import LoggingConfig; from vllm.logger import configure_logging, init_logger; "
    "configure_logging(LoggingConfig()); log = init_logger('vllm.cli_test'); "
    "log.info('INFO-LINE'); log.warning('WARNING-LINE')"
)


@pytest.mark.parametrize("level", [None, "warning"])
def test_log_level_is_set_before_vllm_configures_its_logging(level: str | None) -> None:
    setup = f"from vllm_embed.cli import configure_logging; configure_logging({level!r}); " if level else ""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING")}
    done = subprocess.run(
        [sys.executable, "-c", setup + LOG_BOTH], env=env, capture_output=True, text=True, timeout=300
    )
    logged = done.stdout + done.stderr
    assert done.returncode == 0, logged[-2000:]
    assert "WARNING-LINE" in logged
    assert ("INFO-LINE" in logged) == (level is None)
