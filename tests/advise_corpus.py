"""Real prose for the `advise` tests: standard-library docstrings, which every Python installation has."""

from __future__ import annotations

import importlib
import inspect

STDLIB_MODULES = (
    "json", "os", "re", "collections", "itertools", "functools", "pathlib", "string", "textwrap", "shutil",
    "subprocess", "threading", "logging", "argparse", "datetime", "decimal", "heapq", "bisect", "random",
    "statistics", "csv", "urllib.parse", "typing", "inspect", "dataclasses", "enum", "io", "tarfile",
    "zipfile", "sqlite3", "socket", "email.message", "http.client", "asyncio", "contextlib",
)  # fmt: skip


def stdlib_documents(limit: int = 320) -> list[dict[str, str]]:
    """Docstrings of standard-library objects (200 characters or more), titled by their qualified name."""
    rows: list[dict[str, str]] = []
    for module_name in STDLIB_MODULES:
        module = importlib.import_module(module_name)
        for name in sorted(vars(module)):
            doc = inspect.getdoc(getattr(module, name))
            if name.startswith("_") or not doc or len(doc) < 200:
                continue
            rows.append({"id": f"{module_name}.{name}", "text": f"{module_name}.{name}\n\n{doc}"})
    unique = {row["text"]: row for row in rows}  # re-exported objects share a docstring
    return list(unique.values())[:limit]
