"""Reliability scenarios: the emitter against its own broker and the in-process Telegram, under faults."""
