"""A small REST API over TgData (needs ``pip install fastapi uvicorn``).

    GET /groups                            the account's groups
    GET /groups/{group}/messages?limit=&after_id=
    GET /groups/{group}/count

`group` is a marked id or a username (without the "@"). One TgData (one Telegram connection) serves every
request; it is opened at start-up and closed at shutdown.

    python -m examples.fastapi_app --config config.ini --port 8000
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI  # type: ignore[import-not-found, unused-ignore]  # optional: Any without it

from emitter.tgdata import Row, TgData, json_rows


def _group(group: str) -> int | str:
    return int(group) if group.lstrip("-").isdigit() else f"@{group.lstrip('@')}"


def create_app(tg: TgData) -> FastAPI:
    """The API, serving through `tg` (connected at start-up, closed at shutdown)."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await tg.connect()
        try:
            yield
        finally:
            await tg.close()

    async def groups() -> list[Row]:
        return json_rows(await tg.list_groups())

    async def messages(group: str, limit: int = 100, after_id: int | None = None) -> list[Row]:
        return json_rows(await tg.get_messages(_group(group), limit=limit, after_id=after_id))

    async def count(group: str) -> dict[str, int]:
        return {"count": await tg.get_message_count(_group(group))}

    app = FastAPI(title="telegram-emitter", lifespan=lifespan)
    # Routes are added explicitly (no decorators), so the handlers stay plain typed functions.
    app.add_api_route("/groups", groups, methods=["GET"])
    app.add_api_route("/groups/{group}/messages", messages, methods=["GET"])
    app.add_api_route("/groups/{group}/count", count, methods=["GET"])
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the API with uvicorn."""
    import uvicorn  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415 - only needed to serve

    parser = argparse.ArgumentParser(description="REST API over TgData")
    parser.add_argument("--config", default=None, help="the INI file (default: ./config.ini)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(TgData(args.config)), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
