"""The three-group world the change-capture tests and reliability scenario 7 share, and one rule for a change's kind.

Both count changes by (group, kind, message id); keeping the world, the plan and the kind rule in one place keeps
what a test asserts and what the reliability row reports from drifting apart.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from emitter.records import Change, EventType
from tests.faketelegram import FakeTelegram

Key = tuple[int, str]
"""(group id, change kind)."""


def three_groups(fake: FakeTelegram, history: int) -> tuple[list[Any], list[str | int]]:
    """A broadcast channel, a supergroup and a basic group (whose ids the account's private chats share), each
    with `history` messages; returns the chats and the group specs that configure them."""
    channel = fake.add_channel("News", username="news")
    supergroup = fake.add_channel("Talk", username="talk", megagroup=True)
    basic = fake.add_chat("Family")
    friend = fake.add_user("Bob")
    for g in (channel, supergroup):
        fake.post_many(g, history)
    for _ in range(4):
        fake.post_many(basic, history // 4)
        fake.post_many(friend, 5)
    return [channel, supergroup, basic], ["@news", "@talk", fake.peer_id(basic)]


def make_changes(
    fake: FakeTelegram,
    chats: Sequence[Any],
    plan: Mapping[str, int],
    rng: random.Random,
    *,
    pool: int,
    push: bool,
) -> dict[Key, list[int]]:
    """The planned changes (kind EDIT, DELETE or REACTIONS -> how many), round-robin over the groups, each on a
    distinct message among the group's newest `pool`. Returns the changed ids per (group, kind)."""
    pools = {fake.peer_id(c): fake.message_ids(c)[-pool:] for c in chats}
    made: dict[Key, list[int]] = defaultdict(list)
    for kind, total in plan.items():
        for n in range(total):
            chat = chats[n % len(chats)]
            gid = fake.peer_id(chat)
            msg_id = pools[gid].pop(rng.randrange(len(pools[gid])))
            if kind == "EDIT":
                fake.edit(chat, msg_id, f"edited {n}", push=push)
            elif kind == "DELETE":
                fake.delete(chat, [msg_id], push=push)
            else:
                fake.react(chat, msg_id, {"👍": rng.randint(1, 9), "🔥": rng.randint(1, 9)}, push=push)
            made[(gid, kind)].append(msg_id)
    return dict(made)


def flat(made: Mapping[Key, Sequence[int]]) -> set[tuple[int, str, int]]:
    """(group, kind, message id) of every change in `made`."""
    return {(g, kind, i) for (g, kind), ids in made.items() for i in ids}


def change_kind(event_type: str, change: str) -> str:
    """EDIT, DELETE or REACTIONS (an EDIT whose change is REACTIONS), as a consumer tells them apart."""
    return "REACTIONS" if event_type == EventType.EDIT and change == Change.REACTIONS else str(event_type)
