"""The collector's threshold while monitors run, and after."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from emitter.demo_source import DemoSource
from emitter.gc_tuning import FIRST_GENERATION_THRESHOLD, tuned_for_throughput
from emitter.monitor import Monitor
from emitter.testing import MemorySink


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_the_first_generation_waits_longer_while_tuned_and_the_defaults_return_after_the_last_user() -> None:
    """Nested (or concurrent) monitors share the tuning; the application's thresholds come back at the end."""
    gc.set_threshold(700, 11, 12)
    with tuned_for_throughput():
        assert gc.get_threshold() == (FIRST_GENERATION_THRESHOLD, 11, 12)
        with tuned_for_throughput():
            assert gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD
        assert gc.get_threshold()[0] == FIRST_GENERATION_THRESHOLD  # the outer one still runs
    assert gc.get_threshold() == (700, 11, 12)


def test_an_application_that_switched_collection_off_keeps_it_off() -> None:
    """Threshold 0 is the application's choice, not a default to raise."""
    gc.set_threshold(0)
    with tuned_for_throughput():
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold()[0] == 0


def test_the_thresholds_return_when_the_run_raises() -> None:
    """A monitor that fails leaves the collector as it found it."""
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), tuned_for_throughput():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


async def test_a_running_monitor_tunes_the_collector_and_gives_it_back() -> None:
    """While a monitor commits, the first generation waits for FIRST_GENERATION_THRESHOLD allocations."""
    gc.set_threshold(700, 10, 10)
    seen: list[int] = []
    monitor = Monitor(DemoSource(1, history=50, rate=1000, limit=50), MemorySink(), batch_size=10)
    monitor.on_commit = lambda _batch: seen.append(gc.get_threshold()[0])
    await monitor.run()
    assert seen and set(seen) == {FIRST_GENERATION_THRESHOLD}
    assert gc.get_threshold() == (700, 10, 10)
