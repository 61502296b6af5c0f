"""A consumer never steps over a hole in a partition's offsets until it has waited for it to fill."""

from __future__ import annotations

from overdrive.stream.kafka_gaps import OffsetGaps


def test_a_record_past_a_hole_waits_and_the_hole_read_again_fills_it() -> None:
    gaps = OffsetGaps(wait_s=2.0)
    gaps.expect(0, 10)
    assert gaps.admit(0, 10, now=0.0)
    assert not gaps.admit(0, 12, now=0.1)  # 11 is counted by the broker but not written yet
    assert gaps.expected(0) == 11  # read the partition again from there
    assert gaps.admit(0, 11, now=0.2)
    assert gaps.admit(0, 12, now=0.2)
    assert gaps.skipped == 0


def test_a_hole_still_open_after_the_wait_is_stepped_over() -> None:
    gaps = OffsetGaps(wait_s=2.0)
    gaps.expect(1, 5)
    assert not gaps.admit(1, 7, now=100.0)
    assert not gaps.admit(1, 7, now=101.9)
    assert gaps.admit(1, 7, now=102.0)
    assert gaps.skipped == 1 and gaps.expected(1) == 8
    assert not gaps.admit(1, 9, now=102.1)  # a later hole waits its own time


def test_the_first_record_of_a_partition_without_a_committed_offset_sets_what_comes_next() -> None:
    gaps = OffsetGaps()
    assert gaps.admit(2, 40, now=0.0)
    assert not gaps.admit(2, 42, now=0.0)


def test_records_read_again_from_before_the_expected_offset_are_taken() -> None:
    """After a rebalance the partition is read again from its commit: repeats, de-duplicated later."""
    gaps = OffsetGaps()
    gaps.expect(3, 100)
    assert gaps.admit(3, 97, now=0.0) and gaps.expected(3) == 98


def test_a_revoked_partition_expects_nothing() -> None:
    gaps = OffsetGaps()
    gaps.expect(0, 10)
    gaps.forget(0)
    assert gaps.expected(0) is None and gaps.admit(0, 50, now=0.0)
