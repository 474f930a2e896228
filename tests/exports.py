"""Realistic, deterministic Telegram Desktop exports (`result.json`) for tests and benchmarks.

The shapes follow what Telegram Desktop writes: `text` as a string or a list of parts, `text_entities`
always a list, `date` in local time (here UTC+3) beside the authoritative `date_unixtime` string, peers as
"user123" / "channel123", service messages with `actor`/`actor_id`/`action`.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

Message = dict[str, Any]

MIGRATED_ID_SHIFT: Final = 1_000_000_000
"""Basic-group history inside its supergroup's export has ids shifted down by this much."""
BIG_FILE_SIZE: Final = 2**31 + 12_345
"""A file size that does not fit a 32-bit int."""
LOCAL_OFFSET: Final = 3 * 3600
"""The generated exports' `date` fields are local time at UTC+3 (without an offset, as Desktop writes)."""

_START: Final = 1_600_000_000
_SUPERGROUPS: Final = frozenset({"private_supergroup", "public_supergroup"})
_CHANNELS: Final = frozenset({"private_channel", "public_channel"})
_USERS: Final = tuple((2001 + i, f"User {i}") for i in range(10))
_EMOJI_PREFIXES: Final = ("👍 ", "🦀🦀 ", "☀️ ", "é ", "👨‍👩‍👧 ")
_WORDS: Final = ("kafka", "cursor", "avro", "export", "topic", "offset", "schema", "replica", "crab", "ferris")
_FILES: Final = (
    ("sticker", "image/webp", {"sticker_emoji": "🦀", "width": 512, "height": 512}),
    ("voice_message", "audio/ogg", {"duration_seconds": 7}),
    ("audio_file", "audio/mpeg", {"performer": "Noisestorm", "title": "Crab Rave", "duration_seconds": 171}),
    ("animation", "video/mp4", {"width": 320, "height": 240, "duration_seconds": 3}),
    ("video_message", "video/mp4", {"duration_seconds": 12}),
)


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain", "text": text}


class _ChatWriter:
    """Builds one chat's messages; all randomness comes from one seeded `random.Random`."""

    def __init__(
        self, chat_type: str, chat_id: int, seed: int, deleted_every: int, text: Callable[[int], str] | None = None
    ) -> None:
        self.type = chat_type
        self.id = chat_id
        self.rng = random.Random(f"{seed}:{chat_id}")  # a str seed is hashed deterministically (sha512)
        self.deleted_every = deleted_every
        self.text = text
        """Plain text by message id (else 1 to 8 words of a small vocabulary)."""
        self.ts = _START
        self.messages: list[Message] = []

    def _next_id(self, after: int) -> int:
        msg_id = after + 1
        while self.deleted_every and msg_id % self.deleted_every == 0:
            msg_id += 1
        return msg_id

    def _base(self, msg_id: int, kind: str = "message") -> Message:
        self.ts += self.rng.randint(5, 900)
        local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.ts + LOCAL_OFFSET))
        return {"id": msg_id, "type": kind, "date": local, "date_unixtime": str(self.ts)}

    def _author(self) -> tuple[str, str]:
        if self.type in _CHANNELS:
            return f"Chat {self.id}", f"channel{self.id}"
        if self.type in {"personal_chat", "bot_chat"}:
            user_id = self.rng.choice((1001, self.id))
            return f"User {user_id}", f"user{user_id}"
        user_id, name = self.rng.choice(_USERS)
        return name, f"user{user_id}"

    def _rich_text(self, msg: Message) -> None:
        word = self.rng.choice(_WORDS)
        parts: list[Any] = [
            self.rng.choice(_EMOJI_PREFIXES),
            {"type": "bold", "text": word},
            " see ",
            {"type": "text_link", "text": "docs", "href": f"https://example.org/{word}"},
            " cc ",
            {"type": "mention_name", "text": "User 1", "user_id": 2002},
            " 😀 ",
            {"type": "hashtag", "text": f"#{word}"},
        ]
        msg["text"] = parts
        msg["text_entities"] = [_plain(p) if isinstance(p, str) else p for p in parts]

    def _service(self, msg_id: int) -> Message:
        msg = self._base(msg_id, "service")
        name, peer = self._author()
        msg.update(actor=name, actor_id=peer, text="", text_entities=[])
        roll = self.rng.randrange(6)
        if roll == 0 and self.messages:
            msg.update(action="pin_message", message_id=self.messages[-1]["id"])
        elif roll == 1:
            msg.update(action="invite_members", members=[u[1] for u in self.rng.sample(_USERS, 2)])
        elif roll == 2:
            msg.update(action="remove_members", members=[self.rng.choice(_USERS)[1]])
        elif roll == 3:
            msg.update(action="edit_group_title", title=f"Chat {self.id} ({self.rng.choice(_WORDS)})")
        elif roll == 4:
            msg.update(action="topic_created", title=self.rng.choice(_WORDS))
        else:
            msg.update(action="join_group_by_link", inviter="Group")
        return msg

    def _media(self, msg: Message, roll: float) -> None:
        if roll < 0.40:
            msg.update(photo=f"photos/photo_{msg['id']}.jpg", photo_file_size=50_000, width=1280, height=960)
        elif roll < 0.60:
            msg.update(file=f"video_files/{msg['id']}.mp4", file_name=f"{msg['id']}.mp4", file_size=BIG_FILE_SIZE)
            msg.update(media_type="video_file", mime_type="video/mp4", duration_seconds=3600, width=1920, height=1080)
        elif roll < 0.80:
            media_type, mime, fields = self.rng.choice(_FILES)
            msg.update(file=f"files/{msg['id']}", file_size=self.rng.randint(1_000, 900_000))
            msg.update(media_type=media_type, mime_type=mime, **fields)
        elif roll < 0.90:
            voters = [self.rng.randint(0, 9) for _ in range(3)]
            answers = [{"text": w, "voters": v, "chosen": False} for w, v in zip(_WORDS, voters, strict=False)]
            total = sum(voters)
            msg["poll"] = {"question": "Which one?", "closed": False, "total_voters": total, "answers": answers}
        elif roll < 0.95:
            msg["location_information"] = {"latitude": 52.52, "longitude": 13.405}
        else:
            msg["contact_information"] = {"first_name": "Dave", "last_name": "Example", "phone_number": "+4930"}

    def _ordinary(self, msg_id: int) -> Message:
        msg = self._base(msg_id)
        msg["from"], msg["from_id"] = self._author()
        if self.type in _CHANNELS and self.rng.random() < 0.3:
            msg["author"] = "Ferris"
        if self.rng.random() < 0.3:
            self._rich_text(msg)
        else:
            if self.text is not None:
                text = self.text(msg_id)
            else:
                text = " ".join(self.rng.choices(_WORDS, k=self.rng.randint(1, 8)))
            msg["text"], msg["text_entities"] = text, [_plain(text)]
        roll = self.rng.random()
        if roll < 0.25:
            self._media(msg, roll * 4)
        if self.rng.random() < 0.1:
            msg["edited_unixtime"] = str(self.ts + 60)
            msg["edited"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.ts + 60 + LOCAL_OFFSET))
        if self.rng.random() < 0.08:
            msg["forwarded_from"] = "Ferris News"
        if self.messages and self.rng.random() < 0.15:
            msg["reply_to_message_id"] = self.rng.choice(self.messages[-20:])["id"]
        return msg

    def add(self, msg_id: int) -> None:
        service = self.type not in _CHANNELS and self.rng.random() < 0.08
        self.messages.append(self._service(msg_id) if service else self._ordinary(msg_id))

    def build(self, n_messages: int, *, migrated: bool) -> dict[str, Any]:
        msg_id = 0
        if migrated:
            # The basic group's ids come from the account-wide counter: a high start, then shifted negative.
            old_id = 5_000 - MIGRATED_ID_SHIFT
            for _ in range(max(1, n_messages // 5)):
                old_id = self._next_id(old_id)
                self.add(old_id)
            msg_id = self._next_id(msg_id)
            msg = self._base(msg_id, "service")
            msg.update(actor=f"Chat {self.id}", actor_id=f"channel{self.id}", action="migrate_from_group")
            msg.update(title=f"Chat {self.id}", text="", text_entities=[])
            self.messages.append(msg)
        while len(self.messages) < n_messages:
            msg_id = self._next_id(msg_id)
            self.add(msg_id)
        chat: dict[str, Any] = {"name": f"Chat {self.id}", "type": self.type, "id": self.id}
        if self.type == "saved_messages":
            del chat["name"]  # Desktop writes no name for Saved Messages
        chat["messages"] = self.messages
        return chat


def make_export(
    path: Path,
    *,
    chats: list[tuple[str, int, int]],
    seed: int = 0,
    deleted_every: int = 0,
    with_migrated: bool = False,
) -> Path:
    """Write a deterministic Telegram Desktop export and return the `result.json` path.

    Args:
        path: a `.json` file to write, or a folder to write `result.json` into (created if missing).
        chats: (export chat type, bare id, number of messages) per chat; one chat gives the single-chat
            shape, several the full-account shape (`chats.list`).
        seed: the same seed gives byte-identical files.
        deleted_every: leave out every id divisible by this (deleted messages, id gaps); 0 for none.
        with_migrated: start the first supergroup with basic-group history at negative ids (a fifth of its
            messages) followed by a `migrate_from_group` service message at id 1.
    """
    if with_migrated and not any(t in _SUPERGROUPS for t, _, _ in chats):
        raise ValueError("with_migrated needs a private_supergroup or public_supergroup chat")
    out = path if path.suffix == ".json" else path / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    built: list[dict[str, Any]] = []
    migrated_done = False
    for chat_type, chat_id, n_messages in chats:
        migrated = with_migrated and not migrated_done and chat_type in _SUPERGROUPS
        migrated_done = migrated_done or migrated
        built.append(_ChatWriter(chat_type, chat_id, seed, deleted_every).build(n_messages, migrated=migrated))
    doc: dict[str, Any]
    if len(built) == 1:
        doc = built[0]
    else:
        doc = {
            "about": "Here is the data you requested.",
            "personal_information": {"user_id": 1001, "first_name": "Alice", "last_name": "Example"},
            "chats": {"about": "This page lists all chats from this export.", "list": built},
        }
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


def write_large_export(path: Path, *, chat_id: int, n_messages: int, seed: int, text: Callable[[int], str]) -> Path:
    """Write a single-supergroup export of `n_messages` without holding them all, and return `result.json`'s path.

    The messages are `make_export`'s (rich text, media, polls, replies, forwards, edits, service messages),
    with `text(id)` as the plain texts; the file is indented as Telegram Desktop writes it. It is written
    under a temporary name and renamed, so an interrupted run never leaves a half file behind.
    """
    out = path if path.suffix == ".json" else path / "result.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _ChatWriter("public_supergroup", chat_id, seed, 0, text)
    partial = out.with_name(f".{out.name}.{os.getpid()}")
    head = json.dumps({"name": f"Chat {chat_id}", "type": writer.type, "id": chat_id}, ensure_ascii=False, indent=1)
    with partial.open("w", encoding="utf-8") as f:
        f.write(head[:-2] + ',\n "messages": [')
        msg_id = 0
        for i in range(n_messages):
            msg_id = writer._next_id(msg_id)
            writer.add(msg_id)
            body = json.dumps(writer.messages[-1], ensure_ascii=False, indent=1).replace("\n", "\n  ")
            f.write(("\n  " if i == 0 else ",\n  ") + body)
            if len(writer.messages) > 40:  # replies and pins look back at most 20 messages
                del writer.messages[:20]
        f.write("\n ]\n}\n")
    partial.replace(out)
    return out
