"""Demo data: real text available offline, the docstrings of the local Python standard library.

Not part of the ingest API: it ships in the wheel only because `examples/demo.py` and the benchmarks need a
corpus that exists on every machine without a download. Run
`python -m vllm_embed.datasets OUT.jsonl [--limit N]` to write the corpus as JSONL from a separate process
(importing the standard library leaves many modules loaded).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

MIN_DOCSTRING_CHARS = 40
"""Shorter docstrings ("Return self.") say too little to be worth searching."""

# Importing these has side effects (opening a browser, printing, needing a display, running code) or
# yields test code rather than documentation.
_SKIPPED_PACKAGES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "tests",
        "lib2to3",
        "ensurepip",
        "pydoc_data",
        "__hello__",
        "__phello__",
        "__main__",
        "msilib",
        "winreg",
        "winsound",
        "msvcrt",
        "_winapi",
    }
)


def _skipped(name: str) -> bool:
    parts = name.split(".")
    return any(
        part in _SKIPPED_PACKAGES or part.startswith("_") or part.startswith("test") or part.endswith("_test")
        for part in parts
    )


def _import_quietly(name: str) -> ModuleType | None:
    """Imports a module, swallowing its warnings and output; `None` when it cannot be imported."""
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - a module may raise anything (even SystemExit) on import
        return None


def _module_names() -> Iterator[str]:
    """Yields the public standard-library module names, packages expanded, in sorted order."""
    for top in sorted(sys.stdlib_module_names):
        if _skipped(top):
            continue
        module = _import_quietly(top)
        if module is None:
            continue
        yield top
        path = getattr(module, "__path__", None)
        if path is None:
            continue
        found = pkgutil.walk_packages(path, prefix=f"{top}.", onerror=lambda _name: None)
        yield from sorted(info.name for info in found if not _skipped(info.name))


def _docstring(obj: Any) -> str | None:
    # `__doc__` rather than `inspect.getdoc`: inherited docstrings would repeat the base class's text.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            doc = obj.__doc__
    except Exception:  # noqa: BLE001 - some objects raise from attribute access
        return None
    if not isinstance(doc, str):
        return None
    cleaned = inspect.cleandoc(doc)
    return cleaned if len(cleaned) >= MIN_DOCSTRING_CHARS else None


def _defined_in(obj: Any, module: ModuleType) -> bool:
    # C accelerators (`_io`, `_json`, ...) define what their public module exports.
    owner = getattr(obj, "__module__", None)
    return isinstance(owner, str) and (owner == module.__name__ or owner.startswith("_"))


def _members(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """Yields the classes and functions defined in `module` and their methods, by qualified name."""
    try:
        members = sorted(vars(module).items())
    except Exception:  # noqa: BLE001
        return
    for name, obj in members:
        if name.startswith("_") or not _defined_in(obj, module):
            continue
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            yield name, obj
        elif inspect.isclass(obj):
            yield name, obj
            for attr, member in sorted(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                if isinstance(member, classmethod | staticmethod):
                    member = member.__func__
                if (
                    inspect.isfunction(member)
                    or inspect.ismethoddescriptor(member)
                    or isinstance(member, property)
                ):
                    yield f"{name}.{attr}", member


def python_docstrings(limit: int | None = None) -> Iterator[dict[str, str]]:
    """Yields the docstrings of the local standard library, in a deterministic order.

    Modules, classes, functions and methods with a docstring of at least `MIN_DOCSTRING_CHARS` characters
    are included; private names, test packages and modules with import side effects are skipped.

    Args:
        limit: Stop after this many records; `None` for all of them.

    Yields:
        `{"id": qualified name, "text": docstring, "module": module name}`.
    """
    if limit is not None and limit <= 0:
        return
    count = 0
    seen_modules: set[str] = set()
    seen_objects: set[int] = set()  # an object re-exported by several modules is yielded once
    for name in _module_names():
        module = _import_quietly(name)
        if module is None or module.__name__ in seen_modules:
            continue
        seen_modules.add(module.__name__)
        entries: list[tuple[str, Any]] = [("", module), *_members(module)]
        for qualname, obj in entries:
            text = _docstring(obj)
            if text is None or id(obj) in seen_objects:
                continue
            seen_objects.add(id(obj))
            yield {"id": f"{name}.{qualname}" if qualname else name, "text": text, "module": name}
            count += 1
            if limit is not None and count >= limit:
                return


def write_jsonl(path: str | Path, limit: int | None = None) -> int:
    """Writes `python_docstrings(limit)` to a JSONL file and returns the number of records."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for record in python_docstrings(limit):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    """Writes the standard-library docstring corpus to a JSONL file."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("output", type=Path, help="JSONL file to write")
    parser.add_argument("--limit", type=int, default=None, help="stop after this many records")
    args = parser.parse_args(argv)
    count = write_jsonl(args.output, args.limit)
    print(f"wrote {count} docstrings to {args.output}")


if __name__ == "__main__":
    main()
