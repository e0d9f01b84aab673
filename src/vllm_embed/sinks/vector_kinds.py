"""The vector kinds a collection keeps beside the dense one: learned sparse and per-token (multi-vector).

`BaseSink` inherits these checks and hooks: what a new collection of a store can keep, what a run must bring
to an existing one, an upsert's extra vectors, and the store's MaxSim over a set of points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vllm_embed.sinks.chunks import MultiVector
from vllm_embed.sinks.layouts import Layout
from vllm_embed.sinks.manifest import Manifest, ManifestMismatchError, model_of

if TYPE_CHECKING:
    from vllm_embed.learned_sparse import SparseVector


UNKNOWN: Any = object()
"""Stands for a collection state not read from the store yet."""


class VectorKinds:
    """Learned sparse and per-token vectors of a collection (a base of `BaseSink`)."""

    collection: str
    _hybrid: bool | None
    _vectors: Any

    if TYPE_CHECKING:

        @property
        def layout(self) -> Layout:
            """The payload layout (`BaseSink.layout`)."""
            ...

        def _sparse_name(self, layout: Layout) -> str: ...

        def _mismatch(self, problem: str) -> ManifestMismatchError: ...

        def _known_manifest(self) -> Manifest | None: ...

    def _layout_multivector(self, layout: Layout) -> str:
        """Store hook: the layout's multivector name in this store."""
        raise NotImplementedError

    def _multivector_refusal(self) -> str | None:
        """Store hook: why this store keeps no per-token vectors (`None`: it keeps them)."""
        return None

    def _multivector_name(self, layout: Layout) -> str:
        """The layout's multivector name in this store; `ValueError` naming the fix for a store without."""
        refusal = self._multivector_refusal()
        if refusal is not None:
            raise ValueError(refusal)
        return self._layout_multivector(layout)

    def check_new_vectors(self, sparse: str | None, multivector: bool) -> None:
        """Refuses, before anything starts, vectors a new collection of this sink cannot keep.

        Args:
            sparse: The run's sparse half (`"learned"`, `"bm25"` or `None`).
            multivector: Whether the run stores per-token vectors.

        Raises:
            ValueError: Naming the layout or store that keeps them.
        """
        if sparse == "learned":
            if self._hybrid:
                raise ValueError(
                    "hybrid=True stores BM25 vectors and this run brings a learned sparse model: leave out "
                    "--hybrid (hybrid=True), or the sparse model"
                )
            self._sparse_name(self.layout)
        if multivector:
            self._multivector_name(self.layout)

    def use_bm25(self) -> None:
        """Makes this sink store BM25 vectors, as `hybrid=True` does (`ingest(..., sparse="bm25")`).

        Raises:
            ValueError: If the sink was built with `hybrid=False`, or its layout stores no sparse vector.
        """
        if self._hybrid is False:
            raise ValueError(
                "sparse='bm25' asks for BM25 vectors and the sink was built with hybrid=False: leave out one"
            )
        self._sparse_name(self.layout)
        self._hybrid = True

    def check_vector_kinds(self, stored: Manifest, run: Manifest) -> None:
        """Refuses a run that would leave out a vector the collection (`stored`) keeps for every point.

        A collection of learned sparse or per-token vectors needs that model on every run that writes: a
        point without them would be missing from the sparse search or the late-interaction stage.

        Raises:
            ManifestMismatchError: Naming the model to pass, or why the run's cannot be added.
        """
        if stored.sparse == "learned" and run.sparse != "learned":
            raise self._mismatch(
                f"holds learned sparse vectors of {stored.sparse_label()}: pass sparse=SparseEmbedder(model="
                f"{stored.sparse_label()}) (--sparse-model), or use another collection"
            )
        if run.sparse == "learned" and stored.sparse != "learned":
            raise self._mismatch(
                f"holds {stored.sparse_label()} sparse vectors and a learned sparse vector cannot be added "
                "to an existing collection: leave out the sparse model, or ingest into a new collection"
            )
        mine, theirs = model_of(stored.multivector), model_of(run.multivector)
        if mine is not None and theirs is None:
            raise self._mismatch(
                f"holds per-token vectors of {mine!r}: pass multivector=MultiVectorEmbedder(model={mine!r}) "
                "(--multivector-model), or use another collection"
            )
        if theirs is not None and mine is None:
            raise self._mismatch(
                "holds no per-token vectors and they cannot be added to an existing collection: leave out "
                "the multi-vector model, or ingest into a new collection"
            )

    def _vector_manifest(self) -> Manifest | None:
        """The manifest whose vector kinds (learned sparse, per-token) writes and searches follow (kept)."""
        if self._vectors is UNKNOWN:
            self._vectors = self._known_manifest()
        vectors: Manifest | None = self._vectors
        return vectors

    def _extra_vectors(
        self, count: int, sparse: Sequence[SparseVector] | None, multivectors: Sequence[MultiVector] | None
    ) -> tuple[list[SparseVector] | None, list[MultiVector] | None]:
        """Checks an upsert's learned sparse and per-token vectors against the collection.

        Each must be given exactly when the collection keeps them, one per point (`count`).

        Raises:
            ValueError: Naming the model the collection was made with, or the count that is off.
        """
        manifest = self._vector_manifest()
        learned = manifest is not None and manifest.sparse == "learned"
        kept = None if manifest is None else model_of(manifest.multivector)
        for name, given, needed, model in (
            ("sparse", sparse, learned, manifest.sparse_label() if manifest else ""),
            ("multivectors", multivectors, kept is not None, repr(kept)),
        ):
            if needed and given is None:
                raise ValueError(
                    f"collection {self.collection!r} keeps a {name} vector per point from {model}: pass "
                    f"{name}= (the vectors of that model) with the dense ones"
                )
            if not needed and given is not None:
                raise ValueError(f"collection {self.collection!r} keeps no {name} vectors: leave out {name}=")
            if given is not None and len(given) != count:
                raise ValueError(f"{name}= has {len(given)} vectors for {count} points")
        return (
            None if sparse is None else list(sparse),
            None if multivectors is None else list(multivectors),
        )

    def _stored_extras(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, SparseVector] | None, dict[str, MultiVector] | None]:
        """Store hook: the stored learned sparse and per-token vectors of `ids` (`None`: kept none)."""
        return None, None

    def maxsim(self, query: MultiVector, ids: Sequence[str]) -> dict[str, float]:
        """The late-interaction (MaxSim) score of `query`'s token vectors with each stored point of `ids`.

        Computed by the store (Qdrant's `MAX_SIM` multivector) over exactly these points.

        Raises:
            ValueError: If the collection keeps no per-token vectors.
        """
        manifest = self._vector_manifest()
        if manifest is None or manifest.multivector_vector is None:
            raise ValueError(
                f"collection {self.collection!r} keeps no per-token vectors: search it without "
                "multivector=, or ingest with a multi-vector model into a new collection"
            )
        return self._maxsim(manifest.multivector_vector, np.asarray(query, dtype=np.float32), ids)

    def _maxsim(self, name: str, query: MultiVector, ids: Sequence[str]) -> dict[str, float]:
        """Store hook: `maxsim` on the multivector `name`."""
        raise NotImplementedError
