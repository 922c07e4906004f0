"""Script sources (server/scripts.py): libraries are pulled in by `--#include`, each written once."""

import dataclasses
import importlib.resources
import re

import pytest

from server.scripts import Scripts, script_source


def library(name: str) -> str:
    return importlib.resources.files("server.lua").joinpath(f"{name}.lua").read_text("utf-8")


@pytest.mark.parametrize("script,libraries", [
    ("send_gift", ["gift_sender_side", "gift_creator_side"]),
    ("gift_debit", ["gift_sender_side"]),
    ("gift_credit", ["gift_creator_side"]),
])
def test_a_script_contains_each_library_it_includes_once_and_no_include_line(script, libraries):
    source = script_source(script)
    assert not re.search(r"^--#include", source, re.MULTILINE)
    for name in libraries:
        assert source.count(library(name)) == 1


def test_the_creator_side_of_a_gift_is_written_in_one_file_only():
    defining = [f.name for f in importlib.resources.files("server.lua").iterdir()
                if f.name.endswith(".lua") and "local function credit_creator" in f.read_text("utf-8")]
    assert defining == ["gift_creator_side.lua"]


async def test_every_script_compiles_in_valkey(redis):
    scripts = Scripts.register(redis)
    for field in dataclasses.fields(scripts):
        script = getattr(scripts, field.name)
        assert await redis.script_load(script.script) == script.sha
