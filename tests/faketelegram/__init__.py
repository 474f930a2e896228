"""An in-process fake Telegram that the real Telethon `TelegramClient` talks to, for tests.

Quick start::

    fake = FakeTelegram()
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 2_500)
    client = fake.client(flood_sleep_threshold=0)   # a real TelegramClient, unconnected
    await client.connect()                           # no network: the sender is FakeSender
    async for m in client.iter_messages("@news", reverse=True, wait_time=0): ...
    await client.disconnect()

The fake sits at the client's sender boundary (see `sender.FakeSender`): Telethon's request
serialisation, response parsing, pagination, entity cache, update/pts handling, gap recovery,
reconnects and flood-wait handling all run unchanged. Faults are scripted on ``fake.faults``
(`FaultPlan`) and with `FakeTelegram.disconnect` / `set_online` / `revoke_access` / `migrate`.
"""

from .faults import FaultPlan, FiredFault, RequestFault
from .sender import FakeSender
from .waiting import wait_until
from .world import FakeTelegram, HistoryCall, UnsupportedRequestError

__all__ = [
    "FakeSender",
    "FakeTelegram",
    "FaultPlan",
    "FiredFault",
    "HistoryCall",
    "RequestFault",
    "UnsupportedRequestError",
    "wait_until",
]
