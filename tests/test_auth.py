"""Bearer tokens: minted, verified, and every way a token can be wrong."""

import base64
import json

import pytest

from server.auth import Principal, check_user_id, mint_token, verify_token
from server.errors import InvalidField

SECRET = "s3cret"
NOW = 1_800_000_000


def token(user="alice", role="viewer", ttl=60, secret=SECRET):
    return mint_token(secret, user, role, now=NOW, ttl_s=ttl)


def code(tok, now=NOW, secret=SECRET):
    with pytest.raises(Exception) as info:
        verify_token(secret, tok, now=now)
    return info.value.code


def test_valid_token_names_its_principal():
    assert verify_token(SECRET, token(role="creator"), now=NOW) == Principal("alice", "creator")


def test_expired_token_is_refused():
    assert code(token(ttl=60), now=NOW + 60) == "token_expired"


def test_missing_token_is_refused():
    assert code(None) == "token_missing"
    assert code("") == "token_missing"


def test_token_signed_with_another_secret_is_invalid():
    assert code(token(secret="other")) == "token_invalid"


def test_tampered_claims_are_invalid():
    prefix, claims, sig = token().split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["role"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    assert code(f"{prefix}.{body}.{sig}") == "token_invalid"


@pytest.mark.parametrize("garbage", ["abc", "gc1.a.b.c", "gc1.!!.??", "x" * 5000, "gc2.a.b"])
def test_malformed_tokens_are_invalid(garbage):
    assert code(garbage) == "token_invalid"


def test_unknown_role_cannot_be_minted():
    with pytest.raises(InvalidField):
        mint_token(SECRET, "alice", "root", now=NOW, ttl_s=60)


def test_bad_user_id_cannot_be_minted():
    with pytest.raises(InvalidField):
        mint_token(SECRET, "a b", "viewer", now=NOW, ttl_s=60)


def test_overlay_cannot_spend_or_read_wallet():
    overlay = Principal("alice", "overlay")
    assert not overlay.can_spend and not overlay.can_read_wallet


def test_a_user_id_with_a_trailing_newline_is_refused():
    with pytest.raises(InvalidField):
        check_user_id("bob\n")
