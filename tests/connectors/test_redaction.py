"""Every encoding of a credential is redacted, wherever in a longer string it sits (no server needed)."""

from __future__ import annotations

import base64
import binascii
import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from external.fake_shop import echoed_encodings
from oshal.connectors.redaction import REDACTED, Redactor, redact

SECRETS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=7, max_size=48)


def _decodings(text: str) -> list[bytes]:
    """Every run of base64 in ``text`` decoded at each of the 4 character alignments, both alphabets."""
    decoded = []
    for run in text.replace(REDACTED, " ").split():
        for start in range(4):
            chunk = run[start:].rstrip("=")
            chunk = chunk[:len(chunk) // 4 * 4]
            for altchars in (None, b"-_"):
                with contextlib.suppress(binascii.Error, ValueError):
                    decoded.append(base64.b64decode(chunk, altchars=altchars, validate=True))
    return decoded


@settings(max_examples=300, deadline=None)
@given(secret=SECRETS, before=st.binary(max_size=8), after=st.binary(max_size=8), urlsafe=st.booleans())
def test_a_secret_inside_any_base64_string_is_redacted(secret: str, before: bytes, after: bytes,
                                                       urlsafe: bool) -> None:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    echoed = "token=" + encode(before + secret.encode() + after).decode() + " end"
    redacted = Redactor([secret]).text(echoed)
    assert REDACTED in redacted
    assert all(secret.encode() not in plain for plain in _decodings(redacted))


@settings(max_examples=200, deadline=None)
@given(secret=SECRETS)
def test_every_encoding_an_api_echoes_is_redacted(secret: str) -> None:
    forms = echoed_encodings(secret)
    redacted = redact({"debug": forms, secret: "as a key too"}, [secret])
    assert redacted["debug"].keys() == forms.keys()
    for name, value in redacted["debug"].items():
        assert REDACTED in value, name
        for form in (secret, secret.upper(), secret.lower(), secret.encode().hex(), secret.encode().hex().upper()):
            assert form not in value, name
    assert all(secret.encode() not in plain for value in redacted["debug"].values() for plain in _decodings(value))
    assert list(redacted) == ["debug", REDACTED]


def test_text_without_the_secret_is_left_alone() -> None:
    unrelated = {"id": 42, "name": "Product 1", "blob": base64.b64encode(b"some other payload").decode(),
                 "hex": b"other".hex(), "flag": True, "none": None}
    assert redact(unrelated, ["canary-shop-key-7f3a9c1e5b"]) == unrelated
    assert redact("abc abc", ["abc"]) == "abc abc"  # shorter than 4 characters: too common to redact
    assert redact("basic auth", []) == "basic auth"


def test_overlapping_forms_become_one_marker() -> None:
    secret = "abcdEFGH1234"
    assert Redactor([secret, "EFGH1234zz"]).text(f"<{secret}zz>") == f"<{REDACTED}>"
    assert Redactor([secret]).text(f"{secret}-{secret.upper()}") == f"{REDACTED}-{REDACTED}"
    assert Redactor([secret]).text("Basic " + base64.b64encode(f"user:{secret}".encode()).decode()) \
        == "Basic dXNlcj" + REDACTED
