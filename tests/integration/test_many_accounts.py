"""Two Telegram accounts, one process each, side by side on one broker, one records topic and one cursor topic."""

from __future__ import annotations

from emitter.cursor_reader import read_cursors
from emitter.settings import Settings
from tests.faketelegram import FakeTelegram
from tests.integration.kafka_read import new_ids_by_group, read_committed
from tests.integration.telegram_harness import emitter, wait_for_ids


def _identity(settings: Settings, instance: str) -> Settings:
    """The same broker and topics under another instance (another cursor-key prefix and transactional id)."""
    return settings.model_copy(update={"emitter": settings.emitter.model_copy(update={"instance": instance})})


async def _new_ids(settings: Settings) -> dict[int, list[int]]:
    return new_ids_by_group(await read_committed(settings.kafka.bootstrap_servers[0], settings.kafka.topic))  # type: ignore[index]


async def test_two_identities_run_side_by_side_without_touching_each_others_cursors(settings: Settings) -> None:
    """Each identity writes only its own groups' cursors; restarting one resumes it alone, the other's stay put."""
    news, sports = FakeTelegram(seed=1), FakeTelegram(seed=2)
    a1 = news.add_channel("News", username="news")
    a2 = news.add_channel("Talk", username="talk", megagroup=True)
    sports.add_channel("Filler")  # so the second account's group ids differ from the first's: disjoint groups
    sports.add_channel("Filler 2")
    b1 = sports.add_channel("Sports", username="sports")
    news.post_many(a1, 250)
    news.post_many(a2, 120)
    sports.post_many(b1, 300)
    ids = {"a1": news.peer_id(a1), "a2": news.peer_id(a2), "b1": sports.peer_id(b1)}
    assert len(set(ids.values())) == 3
    first, second = (
        _identity(settings, f"{settings.emitter.instance}-news"),
        _identity(settings, f"{settings.emitter.instance}-sports"),
    )

    async with (
        emitter(news, first, ["@news", "@talk"]),
        emitter(sports, second, ["@sports"]),
    ):
        await wait_for_ids(first, ids["a1"], len(news.message_ids(a1)))
        await wait_for_ids(first, ids["a2"], len(news.message_ids(a2)))
        await wait_for_ids(second, ids["b1"], len(sports.message_ids(b1)))
        for i in range(5):  # live updates, while both run
            news.post(a1, f"live {i}")
            sports.post(b1, f"live {i}")
        await wait_for_ids(first, ids["a1"], len(news.message_ids(a1)))
        await wait_for_ids(second, ids["b1"], len(sports.message_ids(b1)))

    news_cursors = await read_cursors(first.kafka, first.emitter.instance)
    sports_cursors = await read_cursors(second.kafka, second.emitter.instance)
    assert set(news_cursors) == {ids["a1"], ids["a2"]}
    assert set(sports_cursors) == {ids["b1"]}
    assert news_cursors[ids["a1"]].highest == max(news.message_ids(a1))
    assert news_cursors[ids["a2"]].highest == max(news.message_ids(a2))
    assert sports_cursors[ids["b1"]].highest == max(sports.message_ids(b1))

    # The second account alone comes back after messages it missed; the first's cursors are left as they were.
    sports.post_many(b1, 20)
    async with emitter(sports, second, ["@sports"]):
        await wait_for_ids(second, ids["b1"], len(sports.message_ids(b1)))
    assert await read_cursors(first.kafka, first.emitter.instance) == news_cursors
    assert (await read_cursors(second.kafka, second.emitter.instance))[ids["b1"]].highest == max(sports.message_ids(b1))

    published = await _new_ids(settings)
    assert published[ids["a1"]] == news.message_ids(a1)
    assert published[ids["a2"]] == news.message_ids(a2)
    assert published[ids["b1"]] == sports.message_ids(b1), "the restart published nothing twice and missed nothing"
