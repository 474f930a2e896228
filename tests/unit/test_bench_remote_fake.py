"""The benches' fake Telegram in a child process: a real client reads its world over TCP and gets its posts live."""

from __future__ import annotations

from telethon import events

from bench.probe import STAMP_PREFIX
from bench.remote_fake import LATENCY_HISTORY, RemoteFake
from tests.faketelegram import wait_until


async def test_a_client_reads_the_history_gets_stamped_posts_and_the_counters_tell() -> None:
    """History over the socket, N stamped posts arrive live in order, drops are counted, requests per method."""
    async with RemoteFake("latency") as fake:
        assert fake.port > 0
        assert fake.groups == ["@live"]
        assert fake.messages > LATENCY_HISTORY  # and the channel's creation
        client = await fake.client()
        live: list[str] = []

        async def on_new(event: events.NewMessage.Event) -> None:
            live.append(event.message.message)

        client.add_event_handler(on_new, events.NewMessage())
        await client.connect()
        try:
            history = [m.id async for m in client.iter_messages("@live", reverse=True, wait_time=0)]
            assert len(history) == fake.messages
            posting = await fake.post(20, 200)
            assert posting["posted"] == 20
            await wait_until(lambda: len(live) == 20, within=10, message="20 live posts")
            stamps = [int(text.removeprefix(STAMP_PREFIX)) for text in live]
            assert stamps == sorted(stamps)
            await fake.call("drop", fraction=1.0, seed=1)
            await fake.post(5, 200)
            counters = await fake.call("counters")
            assert counters["dropped"] == 5
            assert counters["requests"]["messages.GetHistoryRequest"] >= 1
        finally:
            await client.disconnect()
    assert len(live) == 20
