"""What a webhook delivers next (server/hook_events.py), from history entries. Pure."""

from server.hook_events import EVENT_TYPES, HookState, plan_batch, state_at

ALL = frozenset(EVENT_TYPES)


def gift(seq, diamonds=5, **extra):
    return seq, {"t": "gift", "room": "alice", "seq": seq, "live_id": "1", "diamonds": diamonds, **extra}


def test_events_are_delivered_in_order_and_the_cursor_moves_past_them():
    batch = plan_batch(HookState(3, 0, 0), [gift(4), gift(5)], ALL)
    assert [e["seq"] for e in batch.events] == [4, 5]
    assert batch.state == HookState(5, 10, 0)


def test_a_gift_crossing_the_goal_is_followed_by_goal_reached():
    batch = plan_batch(HookState(1, 90, 100), [gift(2, 5), gift(3, 10), gift(4, 10)], ALL)
    assert [(e["t"], e["seq"]) for e in batch.events] == [("gift", 2), ("gift", 3), ("goal_reached", 3), ("gift", 4)]
    assert batch.events[2]["live_diamonds"] == 105


def test_a_new_live_starts_from_zero_without_a_goal():
    opened = (3, {"t": "live", "room": "alice", "seq": 3, "state": "open"})
    goal = (5, {"t": "goal", "room": "alice", "seq": 5, "diamonds": 50})
    batch = plan_batch(HookState(2, 150, 100), [opened, gift(4, 40), goal, gift(6, 10)], ALL)
    assert [e["t"] for e in batch.events] == ["live", "gift", "goal", "gift", "goal_reached"]
    assert batch.state == HookState(6, 50, 50)


def test_a_goal_event_sets_the_goal_it_is_compared_with():
    goal = (2, {"t": "goal", "room": "alice", "seq": 2, "diamonds": 8})
    assert [e["t"] for e in plan_batch(HookState(1, 5, 0), [goal, gift(3, 5)], ALL).events] == [
        "goal", "gift", "goal_reached"]


def test_unsubscribed_types_are_skipped_but_the_cursor_still_moves():
    batch = plan_batch(HookState(0, 0, 0), [(1, {"t": "live", "state": "open"}), gift(2)], frozenset({"live"}))
    assert [e["t"] for e in batch.events] == ["live"] and batch.state.seq == 2


def test_trimmed_history_is_announced_as_a_gap():
    batch = plan_batch(HookState(3, 0, 0), [gift(10)], ALL)
    assert batch.events[0] == {"t": "gap", "room": "alice", "from_seq": 4, "to_seq": 9}


def test_unknown_event_types_from_newer_servers_pass_when_subscribed():
    streak_end = (2, {"t": "streak_end", "room": "alice", "seq": 2, "streak_id": 1, "count": 3})
    assert plan_batch(HookState(1, 0, 0), [streak_end], ALL).events == [streak_end[1]]


def opened(seq):
    return seq, {"t": "live", "room": "alice", "seq": seq, "state": "open"}


def test_the_state_at_a_position_is_replayed_from_the_latest_live_start():
    newest_first = [gift(6, 10), (5, {"t": "goal", "room": "alice", "seq": 5, "diamonds": 50}), gift(4, 7),
                    opened(3), gift(2, 1000), opened(1)]
    assert state_at(6, newest_first) == HookState(6, 17, 50)


def test_the_state_at_a_position_counts_from_the_oldest_entry_without_a_live_start():
    assert state_at(9, [gift(9, 4), gift(8, 3)]) == HookState(9, 7, 0)


def test_the_state_at_a_position_without_history_is_empty():
    assert state_at(12, []) == HookState(12, 0, 0)
