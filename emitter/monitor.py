"""The monitor: wires a source to a sink per group and owns the lifecycle.

start → restore cursors → one feeder task per group (backfill, then follow) → one committer task that
commits whole pages with their cursors → drain on stop. Data flows one way; the only thing that flows back
is the tracker's cursor view, so a source can start a sweep where publishing stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from emitter.batcher import Batcher
from emitter.errors import FatalError, RetriableError, SourceError
from emitter.gc_tuning import tuned_for_throughput
from emitter.metrics import Metrics
from emitter.progress import ProgressBoard
from emitter.protocols import Batch, MessageSource, Page, Sink
from emitter.records import EventType, Group, MessageEvent, Source
from emitter.tracker import Tracker

log = logging.getLogger("emitter.monitor")

T = TypeVar("T")

_BACKOFF_START = 0.2
_BACKOFF_MAX = 30.0


@dataclass
class RunStats:
    """What a run did, for the CLI's last line, tests and metrics."""

    published: int = 0
    batches: int = 0
    duplicates: int = 0
    retries: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    groups: int = 0


class Monitor:
    """Runs one source into one sink until the source ends, a fatal error occurs, or stop is requested."""

    def __init__(
        self,
        source: MessageSource,
        sink: Sink,
        *,
        batch_size: int = 500,
        batch_timeout: float = 0.2,
        max_in_flight: int = 10000,
        drain_timeout: float = 20.0,
        on_commit: Callable[[Batch], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.drain_timeout = drain_timeout
        self.max_in_flight = max_in_flight
        self.on_commit = on_commit
        self.stats = RunStats()
        self.metrics = metrics or Metrics()
        self.progress = ProgressBoard()
        self.tracker = Tracker()
        self._batcher = Batcher(batch_size, batch_timeout)
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._stop = asyncio.Event()
        self._feeding = True
        self._fatal: FatalError | None = None
        self._restored = False
        self._sink_ok = False
        self._committing_since: float | None = None
        self.stall_after = 10.0
        """A commit pending longer than this makes the emitter unready: aiokafka retries a lost broker
        inside one commit instead of failing it, so a slow commit is how an outage first shows."""

    @property
    def ready(self) -> bool:
        """Cursors restored, the sink commits, and the source reports no trouble (what /readyz reports)."""
        return not self.problems()

    def status(self) -> dict[str, Any]:
        """What /readyz reports: ready, and which groups failed and why."""
        problems = self.problems()
        status: dict[str, Any] = {
            "ready": not problems,
            "failed": dict(self.stats.failed),
            "groups": self.stats.groups,
        }
        if problems:
            status["not_ready"] = problems
        connected = getattr(self.source, "connected", None)
        if connected is not None:
            status["source_connected"] = bool(connected)
        source_status = getattr(self.source, "status", None)
        if callable(source_status):
            status["source"] = source_status()
        return status

    def problems(self) -> list[str]:
        """Why the emitter is not ready (empty when it is): the sink's and the source's reasons."""
        out: list[str] = []
        if not self._restored:
            out.append("cursors not restored yet")
        if not self._sink_ok:
            out.append("the sink's last operation failed")
        since = self._committing_since
        if since is not None and time.monotonic() - since > self.stall_after:
            out.append(f"a commit has been pending for {time.monotonic() - since:.0f} s")
        source_problems = getattr(self.source, "problems", None)
        if callable(source_problems):
            out.extend(source_problems())
        return out

    def request_stop(self) -> None:
        """Stop taking new events, commit what was accepted, and return from `run` (idempotent)."""
        self._stop.set()
        self._wakeup.set()

    async def run(self) -> RunStats:
        """Run until done; raises FatalError (fenced, bad topic) after stopping cleanly."""
        async with contextlib.AsyncExitStack() as stack:
            stack.enter_context(tuned_for_throughput())
            # The sink starts first: its producer fences any older instance before cursors are read.
            if await self._retrying("start sink", partial(stack.enter_async_context, self.sink)) is None:
                return self.stats
            committed = await self._retrying("restore cursors", self.sink.load_cursors)
            if committed is None:
                return self.stats
            # Sources that compare what they re-read with what was published (Telegram's rescans) say how much
            # of it the cursors keep; for the others the digest would be work for nothing.
            self.tracker = Tracker(committed, digest_limit=int(getattr(self.source, "digest_limit", 0)))
            log.info("restored %d cursors", len(committed))
            if not await self._unless_stopped("starting the source", stack.enter_async_context(self.source)):
                # Half started (a client connecting through a proxy that is down, say): its stop is idempotent.
                await self.source.__aexit__(None, None, None)
                return self.stats
            remember = getattr(self.source, "remember", None)
            if callable(remember):  # sources that can skip work with what the cursors hold (stored peers)
                remember(committed)
            groups = await self.source.groups()
            self.stats.groups = len(groups)
            self._restored = True
            self.metrics.ready.set(1 if self.ready else 0)
            await self._supervise(groups)
        self.stats.duplicates = self.tracker.duplicates
        return self.stats

    async def _supervise(self, groups: Sequence[Group]) -> None:
        feeders = [asyncio.create_task(self._feed(g), name=f"feed {g.id}") for g in groups]
        committer = asyncio.create_task(self._commit_loop(), name="commit")
        stop = asyncio.create_task(self._stop.wait(), name="stop")
        all_fed: asyncio.Future[list[BaseException | None]] = asyncio.gather(*feeders, return_exceptions=True)
        watched: set[asyncio.Future[Any]] = {committer, stop, all_fed}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._feeding = False
            for task in feeders:
                task.cancel()
            # Bounded: a source that ignored its cancellation must not keep the process from exiting.
            _, stuck = await asyncio.wait(feeders, timeout=self.drain_timeout) if feeders else (set(), set())
            for task in stuck:
                log.error("%s did not stop within %.0f s; leaving it behind", task.get_name(), self.drain_timeout)
            stop.cancel()
            self._wakeup.set()
            await self._drain(committer)
        # A source's fatal error surfaces after the drain has committed what was accepted.
        if self._fatal is not None:
            raise self._fatal

    async def _drain(self, committer: asyncio.Task[None]) -> None:
        """Let the committer flush what was accepted, within the drain bound."""
        try:
            await asyncio.wait_for(asyncio.shield(committer), self.drain_timeout)
        except TimeoutError:
            committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await committer
            log.warning(
                "drain took longer than %.0f s: %d accepted events left uncommitted (they will be read again)",
                self.drain_timeout,
                len(self._batcher),
            )

    async def _feed(self, group: Group) -> None:
        try:
            async for page in self.source.pages(group, self.tracker.cursor):
                while len(self._batcher) >= self.max_in_flight:
                    self._room.clear()
                    await self._room.wait()
                # accept + add run with no await in between, so a stop can never separate them.
                dropped = self.tracker.duplicates
                events, cursor = self.tracker.accept(page)
                self._batcher.add(events, cursor, page.span_context)
                self._wakeup.set()
                self._account(page, events, self.tracker.duplicates - dropped)
                self._track_failure(page)
        except SourceError as e:
            self._fail(group, e.reason)
        except FatalError as e:
            self._fatal = e
            self.request_stop()
        except Exception as e:
            log.exception("group %d stopped by an unexpected error", group.id)
            self._fail(group, f"{type(e).__name__}: {e}")

    def _account(self, page: Page, events: list[MessageEvent], dropped: int) -> None:
        gid = str(page.group.id)
        if dropped:
            self.metrics.duplicates.labels(gid).inc(dropped)
        fills = sum(1 for e in events if e.source is Source.SWEEP and e.event_type is EventType.NEW)
        if fills:
            self.metrics.gap_fills.labels(gid).inc(fills)
        if page.paused_until is not None:
            self.progress.pause(page.group, page.paused_until)
        if page.total is not None:
            self.progress.set_total(page.group, page.total)
            self.metrics.backfill_total.labels(gid).set(page.total)

    def _track_failure(self, page: Page) -> None:
        gid = page.group.id
        if page.failed is not None:
            if self.stats.failed.get(gid) != page.failed:
                log.error(
                    "group %d (%s) failed: %s; re-checked later, the other groups go on",
                    gid,
                    page.group.title or "",
                    page.failed,
                    extra={"group_id": gid},
                )
            self.stats.failed[gid] = page.failed
        elif self.stats.failed.pop(gid, None) is not None:
            log.info("group %d (%s) can be read again", gid, page.group.title or "", extra={"group_id": gid})

    def _fail(self, group: Group, reason: str) -> None:
        log.error(
            "group %d (%s) failed: %s; the other groups go on",
            group.id,
            group.title or "",
            reason,
            extra={"group_id": group.id},
        )
        self.stats.failed[group.id] = reason
        cursor = self.tracker.cursor(group.id).with_failure(reason)
        self.tracker.set(cursor)
        self._batcher.add((), cursor)
        self._wakeup.set()

    async def _commit_loop(self) -> None:
        while True:
            if self._batcher.empty:
                if not self._feeding:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            if self._feeding and not self._batcher.due():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(
                        self._batcher.time_left()
                    ):  # not wait_for, which can swallow a cancellation on 3.11
                        await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = self._batcher.take()
            self._room.set()
            await self._retrying("commit", partial(self._commit, batch))

    async def _commit(self, batch: Batch) -> None:
        started = time.perf_counter()
        self._committing_since = time.monotonic()
        try:
            await self.sink.commit(batch)
        except RetriableError:
            self.metrics.transaction_failures.inc()
            raise
        finally:
            self._committing_since = None
        self.metrics.observe_commit(batch, time.perf_counter() - started)
        self.progress.committed(batch)
        for p in self.progress.groups.values():
            self.metrics.backfill_done.labels(str(p.group.id)).set(p.done)
        self.stats.published += len(batch.events)
        self.stats.batches += 1
        log.debug(
            "committed %d events and %d cursors in %.1f ms",
            len(batch.events),
            len(batch.cursors),
            (time.perf_counter() - started) * 1000,
        )
        if self.on_commit is not None:
            self.on_commit(batch)

    async def _unless_stopped(self, what: str, step: Awaitable[Any]) -> bool:
        """Await `step` unless a stop comes first (then cancel it); whether it completed.

        A Telegram source whose first connection fails retries inside its start for as long as it takes (the
        network or the proxy is down): SIGTERM must still end the process within the drain's bound.
        """
        task = asyncio.ensure_future(step)
        stop = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.warning("stopped while %s", what)
        if task.cancelled():
            return False
        task.result()  # its error, if it failed
        return True

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T | None:
        """Run `op`, retrying RetriableError with capped exponential backoff until it works or stop.

        Returns None when a stop was requested before it succeeded.
        """
        delay = _BACKOFF_START
        while True:
            try:
                result = await op()
            except RetriableError as e:
                self._sink_ok = False
                self.metrics.ready.set(0)
                self.stats.retries += 1
                log.warning("%s failed: %s; retrying in %.1f s", what, e, delay)
                if self._stop.is_set() and what != "commit":
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
                continue
            self._sink_ok = True
            self.metrics.ready.set(1 if self.ready else 0)
            return result
