"""The heap is frozen for the time of a run and given back as it was after."""

from __future__ import annotations

import gc

from controltower.evals import heap


def test_overlapping_runs_freeze_once_and_restore_the_thresholds() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with heap.older_objects_frozen():
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert gc.get_threshold()[0] == max(before[0], heap.RUN_THRESHOLD)
        with heap.older_objects_frozen():  # a second run meanwhile
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen  # the first one still runs
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_thresholds_set_during_a_run_are_left_alone() -> None:
    before = gc.get_threshold()
    try:
        with heap.older_objects_frozen():
            gc.set_threshold(1234, before[1], before[2])
        assert gc.get_threshold()[0] == 1234
    finally:
        gc.set_threshold(*before)
