"""The cv ETA (issue 28.12): each kind of unit timed on its own, work that will not run dropped, no swing inside a
unit."""

import pytest

from medtl.plumbing.eta import WorkEstimate


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_nothing_is_promised_before_a_unit_is_timed_then_other_kinds_borrow_the_rate():
    clock = Clock()
    estimate = WorkEstimate({"resize arm": 4, "patch arm": 4}, clock)
    estimate.start("resize arm")
    assert estimate.seconds_left() is None and estimate.text() == "ETA after the first epoch"
    clock.now = 10
    estimate.finished("resize arm")
    assert estimate.seconds_left() == pytest.approx(7 * 10)  # the patch arm borrows 10 s/epoch until it is timed
    for _ in range(3):
        clock.now += 10
        estimate.finished("resize arm")
    estimate.start("patch arm")
    clock.now += 40
    estimate.finished("patch arm")  # a patch-mode epoch costs 4x: its own rate from now on
    assert estimate.seconds_left() == pytest.approx(3 * 40)


def test_dropped_work_leaves_the_plan_and_the_total():
    clock = Clock()
    estimate = WorkEstimate({"scratch": 6, "imagenet": 6, "source s1": 3}, clock)
    estimate.drop("imagenet", 6)  # its weights cannot be had: skipped
    estimate.drop("source s1", 3)  # reused from the cache
    assert estimate.total == 6
    estimate.start("scratch")
    clock.now = 5
    estimate.finished("scratch")
    assert estimate.seconds_left() == pytest.approx(25)


def test_the_unit_in_progress_counts_down_and_never_below_zero():
    clock = Clock()
    estimate = WorkEstimate({"a": 3}, clock)
    estimate.start("a")
    clock.now = 10
    estimate.finished("a")
    left = []
    for now in (12, 15, 19, 25):  # the second epoch runs past its estimate (its scoring at the end)
        clock.now = now
        left.append(estimate.seconds_left())
    assert left == [18, 15, 11, 10]  # down smoothly, then it waits at the next epoch's worth instead of jumping


def test_a_slow_first_epoch_stops_counting_once_three_are_timed():
    clock = Clock()
    estimate = WorkEstimate({"a": 10}, clock)
    estimate.start("a")
    for seconds in (60, 10, 10):
        clock.now += seconds
        estimate.finished("a")
    assert estimate.rate("a") == 10 and estimate.text() == "ETA 70 s"


def test_a_folds_set_up_is_not_timed_as_an_epoch():
    """The demo's first ETA was 2x too long: model building and fold set-up were counted as its first epoch."""
    from types import SimpleNamespace

    from medtl.workflows.cv_progress import Reporter

    clock = Clock()
    estimate = WorkEstimate({"arm": 4}, clock)
    run = SimpleNamespace(rundir=SimpleNamespace(log=lambda text: None), warnings=[])
    reporter = Reporter(run, lambda *args, **kwargs: None, talk=False, estimate=estimate)
    on_epoch, on_batch = reporter.callbacks("arm r0 fold 0", 4, kind="arm")
    clock.now = 10  # building the model, loading weights, writing the fold's records
    for step in (1, 2):
        on_batch(step, 2)
        clock.now += 1
    on_epoch({"epoch": 0, "train_loss": 0.5, "seconds": 2.0})
    assert estimate.rate("arm") == pytest.approx(2.0) and estimate.seconds_left() == pytest.approx(6.0)
