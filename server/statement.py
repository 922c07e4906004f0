"""Statements: a user's ledger over a time range, oldest first, as JSON rows or CSV.

Ledger entries are stream entries whose ids start with their time in ms, so a range of time is
a range of ids (`XRANGE`). A statement returns at most `limit` entries and a `next` cursor (the
last entry's id) when there are more; pass it back as `after`. CSV has fixed columns; fields
specific to an entry kind go into `details` as ``name=value`` pairs (see docs/economy.md).
"""

from __future__ import annotations

import csv
import datetime
import io
from typing import Any

import redis.asyncio as aioredis

from server import keys
from server.wallet_store import ledger_entry

__all__ = ["read_statement", "statement_csv", "CSV_COLUMNS", "MAX_ENTRIES"]

MAX_ENTRIES = 10_000
CSV_COLUMNS = ("id", "time", "kind", "unit", "delta", "balance", "ref", "rate_bp", "rate_version", "details")
_FIXED = frozenset(CSV_COLUMNS) | {"ts"}


async def read_statement(client: aioredis.Redis, user_id: str, *, start_ms: int, end_ms: int | None,
                         after: str | None, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Entries from `start_ms` to `end_ms` (inclusive; None: now), after the entry id `after`."""
    low = f"({after}" if after else str(start_ms)
    high = "+" if end_ms is None else str(end_ms)
    rows = await client.xrange(keys.ledger(user_id), min=low, max=high, count=limit + 1)
    entries = [ledger_entry(entry_id, fields) for entry_id, fields in rows[:limit]]
    return entries, (entries[-1]["id"] if len(rows) > limit else None)


def _time(ts: object) -> str:
    if not isinstance(ts, int):
        return ""
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).isoformat(timespec="milliseconds")


def statement_csv(entries: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        details = " ".join(f"{name}={value}" for name, value in sorted(entry.items()) if name not in _FIXED)
        row = {**entry, "time": _time(entry.get("ts")), "details": details}
        writer.writerow([row.get(column, "") for column in CSV_COLUMNS])
    return out.getvalue()
