"""Script sources: shared helpers are pasted in where a script includes them."""

import dataclasses

from server.scripts import Scripts, script_source


def test_includes_are_expanded_in_every_script():
    for field in dataclasses.fields(Scripts):
        assert not [line for line in script_source(field.name).splitlines() if line.startswith("--@include")]
    assert "local function check_spending" in script_source("send_gift")


async def test_every_script_loads(redis):
    for field in dataclasses.fields(Scripts):
        assert len(await redis.script_load(script_source(field.name))) == 40
