"""The error tree: every leaf has a unique wire code, drawn in the module docstring and listed
in docs/protocol.md, and Lua codes map back to their leaves."""

from pathlib import Path

import pytest

from server import errors

LEAVES = [getattr(errors, name) for name in errors.__all__ if name != "error_for_code"]
PROTOCOL = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text()


def test_codes_are_unique():
    codes = [leaf.code for leaf in LEAVES]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("leaf", LEAVES, ids=lambda leaf: leaf.code)
def test_every_code_is_in_the_tree_and_the_protocol(leaf):
    assert f"{leaf.__name__} " in errors.__doc__ and f" {leaf.code} " in errors.__doc__
    assert f"`{leaf.code}`" in PROTOCOL


@pytest.mark.parametrize("code,leaf", [("account_locked", errors.AccountLocked),
                                       ("spending_limit", errors.SpendingLimit),
                                       ("withdrawal_state", errors.WithdrawalState), ("nonsense", errors.GiftcastError)])
def test_script_codes_map_to_leaves(code, leaf):
    assert type(errors.error_for_code(code)) is leaf
