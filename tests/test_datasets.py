from __future__ import annotations

from churnclv.datasets import load_cdnow
from churnclv.ingest import validate_frames


def test_cdnow_master_keeps_every_line_and_customer() -> None:
    frame = load_cdnow("master")
    assert len(frame) == 69_659
    assert frame["customer_id"].nunique() == 23_570
    assert frame["customer_id"].iloc[0] == "00001"  # leading zeros kept
    assert str(frame["ts"].min().date()) == "1997-01-01"
    assert str(frame["ts"].max().date()) == "1998-06-30"


def test_cdnow_passes_validation_without_rejects() -> None:
    result = validate_frames(load_cdnow("master"))
    report = result.reports["transactions"]
    assert (report.read, report.accepted, report.rejected) == (69_659, 69_659, 0)
    assert report.customers == 23_570


def test_cdnow_sample_is_a_tenth() -> None:
    frame = load_cdnow("sample")
    assert frame["customer_id"].nunique() == 2_357
    assert len(frame) == 6_919
