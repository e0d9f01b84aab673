"""`verify_collection` finds the unusable vectors older versions stored (written here with each store's own
client, past vllm-embed's checks) and re-embeds them from their stored texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ingest_fixtures import STORE_LAYOUTS, FakeHashEmbedder, dump_store, open_sink, poison

from vllm_embed.ingest import ingest
from vllm_embed.ingest.verify import VerifyReport, verify_collection
from vllm_embed.sinks import CollectionNotFoundError, ManifestMismatchError

TEXTS = [f"text number {i}" for i in range(7)]


@pytest.mark.parametrize("store", STORE_LAYOUTS)
def test_invalid_vectors_are_found_and_repaired_from_the_stored_texts(
    store: tuple[str, str], tmp_path: Path
) -> None:
    kind, layout = store
    fake = FakeHashEmbedder()
    with open_sink(kind, tmp_path, layout=layout) as sink:
        ingest(TEXTS, embedder=fake, sink=sink, progress=False)
        before = dump_store(sink)
        bad = sorted(before)[1:4]
        poison(sink, bad)

        report = verify_collection(sink, batch_size=2)  # a check alone needs no embedder
        assert (report.checked, report.invalid, report.repaired) == (7, 3, 0)
        assert sorted(report.invalid_ids) == bad

        repairer = FakeHashEmbedder()
        report = verify_collection(sink, repairer, repair=True, batch_size=2)
        assert (report.checked, report.invalid, report.repaired) == (7, 3, 3)
        assert sorted(t for call in repairer.calls for t in call) == sorted(before[i][0]["text"] for i in bad)

        assert verify_collection(sink) == VerifyReport(checked=7, invalid=0, repaired=0, invalid_ids=())
        after = dump_store(sink)
        assert sorted(after) == sorted(before)
        for point_id, (payload, vector) in before.items():
            assert after[point_id][0] == payload  # payloads are left as they were
            np.testing.assert_allclose(after[point_id][1], vector, atol=1e-6)


def test_repair_needs_the_collections_model_and_an_existing_collection(tmp_path: Path) -> None:
    fake = FakeHashEmbedder()
    with open_sink("qdrant", tmp_path) as sink:
        with pytest.raises(CollectionNotFoundError):
            verify_collection(sink)
        ingest(TEXTS, embedder=fake, sink=sink, progress=False)
        with pytest.raises(ValueError, match="repair=True needs the embedder"):
            verify_collection(sink, repair=True)
        with pytest.raises(ManifestMismatchError, match="model: collection has 'fake-model'"):
            verify_collection(sink, FakeHashEmbedder(model="other"), repair=True)
        with pytest.raises(ValueError, match="batch_size=0"):
            verify_collection(sink, batch_size=0)


def test_report_reads_as_one_line_and_as_json() -> None:
    report = VerifyReport(checked=10, invalid=3, repaired=0, invalid_ids=("a", "b"))
    assert str(report) == "10 points checked, 3 invalid, 0 repaired (invalid: a, b, ...)"
    assert report.to_dict() == {
        "checked": 10,
        "invalid": 3,
        "repaired": 0,
        "invalid_ids": ["a", "b"],
        "unrepairable": 0,
    }


def test_a_point_without_its_text_is_reported_unrepairable_not_embedded_from_nothing(tmp_path: Path) -> None:
    with open_sink("qdrant", tmp_path) as sink:
        ingest(TEXTS, embedder=FakeHashEmbedder(), sink=sink, progress=False)
        bad = sorted(dump_store(sink))[:3]
        poison(sink, bad)
        sink.client.delete_payload(sink.collection, keys=["text"], points=[bad[0]], wait=True)
        sink.client.set_payload(sink.collection, payload={"text": ""}, points=[bad[1]], wait=True)

        repairer = FakeHashEmbedder()
        report = verify_collection(sink, repairer, repair=True)
        assert (report.invalid, report.repaired, report.unrepairable) == (3, 1, 2)
        assert "" not in [t for call in repairer.calls for t in call]
        assert "2 unrepairable (no stored text)" in str(report)
        assert verify_collection(sink).invalid == 2  # the two stay invalid, and are still found
