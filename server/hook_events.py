"""What a webhook (or an event stream, server/event_stream.py) delivers next, decided from the
room's history. Pure: no I/O, no clock.

A webhook is a cursor into the room's history (`live:{u:ID}:history`, one entry per room event,
id = its seq) plus the little state needed to derive events the history does not hold:
the current live's diamonds and the goal, to announce ``goal_reached`` when a gift crosses it.
`plan_batch` turns the history entries after the cursor into the events to POST and the state
after them; the cursor only moves once the receiver answered 2xx, so a batch is delivered
at least once, always in seq order. The event stream runs the same planner one event at a time,
its cursor starting where the client says it stopped (`state_at` finds the state there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import msgpack

__all__ = ["HookState", "Batch", "plan_batch", "state_at", "history_entry", "is_live_start", "EVENT_TYPES"]

# Types a webhook may subscribe to. `gap` (history trimmed past the cursor) is always sent.
EVENT_TYPES = ("gift", "live", "goal", "goal_reached", "streak_end")


@dataclasses.dataclass(frozen=True, slots=True)
class HookState:
    seq: int  # last seq delivered (or skipped by the filter)
    live_diamonds: int  # the current live's diamonds as of `seq`
    goal: int  # the creator's goal as of `seq` (0: none)

    def to_fields(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Batch:
    events: list[dict[str, Any]]  # to POST, in order (may be empty: nothing subscribed happened)
    state: HookState  # the state once they are delivered


def plan_batch(state: HookState, entries: Iterable[tuple[int, dict[str, Any]]], wanted: frozenset[str]) -> Batch:
    """The events to deliver for history `entries` ((seq, event), ascending, all > state.seq)."""
    events: list[dict[str, Any]] = []
    seq, diamonds, goal = state.seq, state.live_diamonds, state.goal
    for entry_seq, event in entries:
        if entry_seq > seq + 1:  # trimmed from the history before we delivered it
            events.append({"t": "gap", "room": event.get("room"), "from_seq": seq + 1, "to_seq": entry_seq - 1})
        seq = entry_seq
        kind = event.get("t")
        if kind in wanted:
            events.append(event)
        if is_live_start(event):
            diamonds, goal = 0, 0  # a new live starts from zero and without a goal, as on the server
        elif kind == "goal":
            goal = int(event.get("diamonds", 0))
        elif kind == "gift":
            before, diamonds = diamonds, diamonds + int(event.get("diamonds", 0))
            if 0 < goal and before < goal <= diamonds and "goal_reached" in wanted:
                events.append({"t": "goal_reached", "room": event.get("room"), "seq": entry_seq,
                               "live_id": event.get("live_id"), "goal": goal, "live_diamonds": diamonds,
                               "ts": event.get("ts")})
    return Batch(events, HookState(seq, diamonds, goal))


def state_at(since: int, newest_first: Iterable[tuple[int, dict[str, Any]]]) -> HookState:
    """The state of a cursor at `since`, from the history entries at or before it, newest first
    (the caller may stop them after the first live start). It is replayed from the latest live
    start among them; when the history no longer reaches back to one, from zero at its oldest
    entry (so the live's diamonds may be undercounted)."""
    back: list[tuple[int, dict[str, Any]]] = []
    for entry in newest_first:
        back.append(entry)
        if is_live_start(entry[1]):
            break
    back.reverse()
    start = back[0][0] - 1 if back else since
    replayed = plan_batch(HookState(start, 0, 0), back, frozenset()).state
    return HookState(since, replayed.live_diamonds, replayed.goal)


def is_live_start(event: dict[str, Any]) -> bool:
    return event.get("t") == "live" and event.get("state") == "open"


def history_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[int, dict[str, Any]]:
    """(seq, event) of one entry of a room's history stream (id `SEQ-0`, field `e`: msgpack)."""
    return int(entry_id.split(b"-")[0]), msgpack.unpackb(fields[b"e"])
