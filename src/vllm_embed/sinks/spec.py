"""A sink's spec: a small picklable value that opens the same collection again, here or in another process."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm_embed.sinks.base import BaseSink


COLLECTION_CHOICES = ("layout", "hybrid", "index_fields", "adopt")
"""Constructor options that belong to one collection: a sink on another collection follows that one's."""


@dataclass(frozen=True)
class SinkSpec:
    """How to open a sink's collection again (`spec.open()`), e.g. in a Ray worker.

    Attributes:
        sink: The sink class as `module:QualifiedName`.
        options: The constructor's keyword arguments (picklable; never a client object).
        shared: Whether other processes may open the collection meanwhile (a server, not an embedded store
            or a caller-supplied client).
    """

    sink: str
    collection: str
    options: dict[str, Any] = field(default_factory=dict)
    shared: bool = False
    reopenable: bool = True
    """`False` for a sink built on a caller-supplied client: nothing in the spec can open that store."""

    def open(self) -> BaseSink:
        """Builds the sink this spec describes (`ValueError` for one built on a caller-supplied client)."""
        if not self.reopenable:
            raise ValueError(
                f"{self.sink} on {self.collection!r} was built on a client object, which cannot be reopened: "
                "build the sink with its URL or path instead"
            )
        module, _, name = self.sink.partition(":")
        cls: type[BaseSink] = getattr(importlib.import_module(module), name)
        return cls(self.collection, **self.options)

    def for_collection(self, name: str) -> SinkSpec:
        """The same store and settings on collection `name`, less its own `COLLECTION_CHOICES`."""
        options = {k: v for k, v in self.options.items() if k not in COLLECTION_CHOICES}
        return SinkSpec(self.sink, name, options, self.shared, self.reopenable)
