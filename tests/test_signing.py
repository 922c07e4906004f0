"""Webhook signatures: HMAC over timestamp and body, with a freshness window."""

import pytest

from server import signing
from server.errors import BadSignature, StaleTimestamp

SECRET = "whsec"
BODY = b'{"type":"payment.succeeded"}'


def test_valid_signature_verifies_and_returns_timestamp():
    header = signing.signature_header(SECRET, 1000, BODY)
    assert signing.verify(SECRET, header, BODY, now=1010, tolerance_s=300) == 1000


def test_changed_body_fails():
    header = signing.signature_header(SECRET, 1000, BODY)
    with pytest.raises(BadSignature):
        signing.verify(SECRET, header, BODY + b" ", now=1000, tolerance_s=300)


def test_wrong_secret_fails():
    header = signing.signature_header("other", 1000, BODY)
    with pytest.raises(BadSignature):
        signing.verify(SECRET, header, BODY, now=1000, tolerance_s=300)


@pytest.mark.parametrize("header", [None, "", "t=abc,v1=00", "v1=00", "t=1000"])
def test_missing_or_malformed_header_fails(header):
    with pytest.raises(BadSignature):
        signing.verify(SECRET, header, BODY, now=1000, tolerance_s=300)


def test_stale_timestamp_fails_even_when_signed():
    header = signing.signature_header(SECRET, 1000, BODY)
    with pytest.raises(StaleTimestamp):
        signing.verify(SECRET, header, BODY, now=1301, tolerance_s=300)


def test_timestamp_from_the_future_beyond_tolerance_fails():
    header = signing.signature_header(SECRET, 2000, BODY)
    with pytest.raises(StaleTimestamp):
        signing.verify(SECRET, header, BODY, now=1000, tolerance_s=300)
