"""Script sources (server/scripts.py): libraries are pulled in by `--#include`, each written once."""

import dataclasses
import importlib.resources
import re
from pathlib import Path

import pytest

from server.scripts import MONEY, NOT_MONEY, Scripts, script_source


def library(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


@pytest.mark.parametrize("script,libraries", [
    ("send_gift", ["lib_amount", "lib_limits", "gift_sender_side", "gift_creator_side"]),
    ("gift_debit", ["lib_amount", "lib_limits", "gift_sender_side"]),
    ("gift_credit", ["gift_creator_side"]),
    ("buy_goods", ["lib_amount", "lib_limits"]),
    ("request_withdrawal", ["lib_amount", "lib_limits"]),
])
def test_a_script_contains_each_library_it_includes_once_and_no_include_line(script, libraries):
    source = script_source(script)
    assert not re.search(r"^--#include", source, re.MULTILINE)
    for name in libraries:
        assert source.count(library(name)) == 1


@pytest.mark.parametrize("function", ["local function credit_creator", "local function check_spending",
                                      "local function amount"])
def test_shared_lua_functions_are_written_in_one_file_only(function):
    defining = [f.name for f in importlib.resources.files("server.lua").iterdir()
                if f.name.endswith(".lua") and function in f.read_text("utf-8")]
    assert len(defining) == 1


def test_the_creator_side_of_a_gift_is_written_in_one_file_only():
    defining = [f.name for f in importlib.resources.files("server.lua").iterdir()
                if f.name.endswith(".lua") and "local function credit_creator" in f.read_text("utf-8")]
    assert defining == ["gift_creator_side.lua"]


async def test_every_script_compiles_in_valkey(redis):
    scripts = Scripts.register(redis)
    for field in dataclasses.fields(scripts):
        script = getattr(scripts, field.name)
        assert await redis.script_load(script.script) == script.sha


def test_every_script_that_writes_the_ledger_is_a_money_script():
    """With GIFTCAST_REDIS_WAIT_REPLICAS, MONEY is what waits for replicas (server/durable.py)."""
    writers = {field.name for field in dataclasses.fields(Scripts) if "ledger" in script_source(field.name)}
    assert writers and writers <= MONEY
    assert MONEY.isdisjoint(NOT_MONEY) and MONEY | NOT_MONEY == {field.name for field in dataclasses.fields(Scripts)}


def test_no_script_or_module_edits_or_trims_a_ledger():
    """Ledger entries are never edited or removed (corrections are new entries): no source
    deletes, trims or re-ids a stream entry, and the only capped streams are room histories."""
    server = Path(__file__).parent.parent / "server"
    sources = {path.name: path.read_text() for path in [*server.glob("*.py"), *server.glob("lua/*.lua")]}
    editing = re.compile(r"XDEL|XTRIM|XSETID|\.xdel\(|\.xtrim\(|\.xadd\(.*maxlen", re.IGNORECASE)
    assert [name for name, text in sources.items() if editing.search(text)] == []
    capped = [line for text in sources.values() for line in text.splitlines() if "'MAXLEN'" in line]
    assert capped and all("'e', event)" in line for line in capped), capped  # history events only
