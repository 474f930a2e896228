"""An in-process fake Telegram that the real Telethon `TelegramClient` talks to, for tests.

Quick start::

    fake = FakeTelegram()
    channel = fake.add_channel("News", username="news")
    fake.post_many(channel, 2_500)
    client = fake.client()                           # a real TelegramClient, unconnected, production settings
    await client.connect()                           # no network: the sender is FakeSender
    async for m in client.iter_messages("@news", reverse=True, wait_time=0): ...
    await client.disconnect()

The fake sits at the client's sender boundary (see `sender.FakeSender`): Telethon's request
serialisation, response parsing, pagination, entity cache, update/pts handling, gap recovery,
reconnects and flood-wait handling all run unchanged. Faults are scripted on ``fake.faults``
(`FaultPlan`: counted errors, timed spells, dropped updates) and with `FakeTelegram.disconnect` /
`set_online` / `revoke_access` / `migrate` / `kill_session` / `push_channel_too_long`. Telegram's flood
limits are on by default (`RateLimits`, `TELEGRAM_LIKE`), on the world's ``monotonic`` clock.
"""

from .faults import FaultPlan, FiredFault, RequestFault, Spell
from .limits import TELEGRAM_LIKE, Bucket, RateLimits
from .sender import FakeSender
from .waiting import wait_until
from .world import SESSION_DEATH_CODES, FakeTelegram, HistoryCall, UnsupportedRequestError

__all__ = [
    "SESSION_DEATH_CODES",
    "TELEGRAM_LIKE",
    "Bucket",
    "FakeSender",
    "FakeTelegram",
    "FaultPlan",
    "FiredFault",
    "HistoryCall",
    "RateLimits",
    "RequestFault",
    "Spell",
    "UnsupportedRequestError",
    "wait_until",
]
