"""Account chores: logging in once, and listing the groups an account can monitor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telethon import TelegramClient
from telethon.sessions import StringSession

from emitter.records import GroupType
from emitter.telegram_mapping import group_from_entity
from emitter.telegram_source import restrict_session_file


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """One group or channel of the account, as `emitter groups` lists it."""

    id: int
    title: str | None
    username: str | None
    type: GroupType
    members: int | None


async def login(
    client: TelegramClient,
    *,
    phone: Callable[[], str],
    code: Callable[[], str],
    password: Callable[[], str],
) -> tuple[str, str]:
    """Log the client in (asking for what Telegram needs) and return (who, session string).

    The session string holds the account's auth key: callers print it only where the user asked.
    """
    await client.start(phone=phone, code_callback=code, password=password)
    me = await client.get_me()
    restrict_session_file(client)
    who = " ".join(p for p in (me.first_name, me.last_name) if p) + (f" (@{me.username})" if me.username else "")
    return f"{who} [id {me.id}]", StringSession.save(client.session)


async def list_groups(client: TelegramClient) -> list[GroupInfo]:
    """Every group, supergroup and channel in the account's dialogs."""
    out: list[GroupInfo] = []
    async for dialog in client.iter_dialogs():
        entity: Any = dialog.entity
        group = group_from_entity(entity)
        if group.type is GroupType.PRIVATE:
            continue
        members = getattr(entity, "participants_count", None)
        out.append(GroupInfo(group.id, group.title, group.username, group.type, members))
    return out
