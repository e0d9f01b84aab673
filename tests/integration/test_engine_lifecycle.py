"""Engines are shared, reference-counted, and leave no process behind."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import psutil

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import psutil
    from vllm_embed import Embedder
    from vllm_embed.backends import vllm_local

    def children():
        return [c for c in psutil.Process().children(recursive=True) if c.status() != psutil.STATUS_ZOMBIE]

    def alive():
        return sorted(c.pid for c in children() if "resource_tracker" not in " ".join(c.cmdline()))

    def trackers():
        return sorted(c.pid for c in children() if "resource_tracker" in " ".join(c.cmdline()))

    def shared_memory():  # the segments this process and its engine processes have mapped
        return sorted({m.path for c in [psutil.Process(), *children()] for m in c.memory_maps()
                       if m.path.startswith("/dev/shm/")})

    if __name__ == "__main__":
        first = Embedder(sys.argv[1], dtype="bfloat16")
        shm_engine = shared_memory()
        engine_pids = alive()
        tracker_pids = trackers()
        second = Embedder(sys.argv[1], dtype="bfloat16")
        shared = vllm_local.running_engines()
        first.close()
        still = second.embed_documents(["the second user keeps the engine"]).shape
        second.close()
        print(json.dumps({"engine_pids": engine_pids, "shared": shared, "still": list(still),
                          "after_close": alive(), "engines": vllm_local.running_engines(),
                          "trackers": tracker_pids, "trackers_after_close": trackers(),
                          "shm_engine": shm_engine,
                          "shm_left": [path for path in shm_engine if os.path.exists(path)]}))
    """
)


def test_closing_the_last_user_stops_the_engine_processes(minilm_path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "lifecycle.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), minilm_path], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["engine_pids"], "the engine should run in worker processes"
    assert report["shared"] == 1
    assert report["still"] == [1, 384]
    assert report["after_close"] == []
    assert report["engines"] == 0
    # multiprocessing's resource tracker serves the whole process: closing an engine leaves it running.
    assert report["trackers"] and report["trackers_after_close"] == report["trackers"]
    # The engine's shared-memory queues are unlinked by its processes as they stop, not left in /dev/shm
    # (a force-killed engine core leaves them until this process exits).
    assert report["shm_engine"] and report["shm_left"] == []
    assert not [
        pid
        for pid in report["engine_pids"]
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]


def test_a_script_without_the_main_guard_gets_one_line_before_any_engine_process(
    minilm_path: str, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "unguarded.py"
    script.write_text(f"from vllm_embed import Embedder\n\nembedder = Embedder({minilm_path!r})\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        f"vllm_embed.errors.EngineStartError: {script}:3 starts the vLLM engine at the script's top level, "
        'which vLLM runs again in each engine process: move it under  if __name__ == "__main__":'
    )
    assert "bootstrapping phase" not in done.stderr
