"""Credentials removed from anything an outside system sends back: the one place that knows what a secret looks like.

An API or MCP server may echo a credential verbatim, URL-encoded, in upper or lower case, as hex, or inside
base64 (standard or URL-safe, padded or not), often as part of a longer encoded string (``Basic base64(user:pw)``,
a JWT, a debug dump). Base64 packs 3 bytes into 4 characters, so a secret embedded at an offset in a longer string
encodes differently depending on that offset modulo 3: each of the three alignments is matched, characters that
carry only bits of the secret exactly, the edge characters that mix the secret with its neighbours by the set of
characters they can be.

``Redactor(secrets).value(data)`` returns ``data`` (JSON-like: strings, lists, dicts, keys included) with every
form of every secret replaced by ``[redacted]``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words and numbers
MIN_ENCODED_CHARS = 8  # an encoded fragment shorter than this is too likely to occur by chance

_B64_STANDARD = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
_B64_URLSAFE = _B64_STANDARD[:62] + "-_"


@dataclass(frozen=True)
class _Form:
    """A literal ``core``, optionally widened by one character before/after when that character is in the set
    (the base64 characters that mix bits of the secret with bits of its neighbours), then any ``=`` padding."""

    core: str
    before: frozenset[str] = frozenset()
    after: frozenset[str] = frozenset()
    padded: bool = False


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._forms: set[_Form] = set()
        self._shortest = 0
        self._any: re.Pattern[str] | None = None  # one C-speed scan rules out the usual text: no secret in it
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Redact ``secret`` (and its encodings) from now on; values shorter than MIN_SECRET_CHARS are ignored."""
        if len(secret) < MIN_SECRET_CHARS or secret in self._secrets:
            return
        self._secrets.add(secret)
        self._forms |= set(_forms(secret))
        self._shortest = min(len(form.core) for form in self._forms)
        self._any = re.compile("|".join(re.escape(core) for core in sorted({f.core for f in self._forms}, key=len,
                                                                             reverse=True)))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def value(self, value: Any) -> Any:
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        return value

    def text(self, text: str) -> str:
        if len(text) < self._shortest or self._any is None or self._any.search(text) is None:
            return text
        spans = sorted(span for form in self._forms for span in _find(text, form))
        if not spans:
            return text
        out, at = [], 0
        for start, end in spans:
            if end <= at:
                continue
            if start < at:  # overlaps the previous span: extend it
                start = at
            else:
                out.append(text[at:start])
                out.append(REDACTED)
            at = end
        out.append(text[at:])
        return "".join(out)


def redact(value: Any, secrets: Iterable[str]) -> Any:
    return Redactor(secrets).value(value)


def _find(text: str, form: _Form) -> Iterator[tuple[int, int]]:
    start = text.find(form.core)
    while start >= 0:
        end = start + len(form.core)
        begin = start - 1 if start > 0 and text[start - 1] in form.before else start
        if end < len(text) and text[end] in form.after:
            end += 1
        if form.padded:
            while end < len(text) and text[end] == "=":
                end += 1
        yield begin, end
        start = text.find(form.core, start + 1)


def _forms(secret: str) -> Iterator[_Form]:
    raw = secret.encode()
    literal = {secret, secret.upper(), secret.lower(), quote(secret, safe=""), quote_plus(secret),
               raw.hex(), raw.hex().upper()}
    for text in literal:
        if len(text) >= MIN_SECRET_CHARS:
            yield _Form(text)
    for alphabet in (_B64_STANDARD, _B64_URLSAFE):
        for offset in range(3):
            form = _base64_form(raw, offset, alphabet)
            if len(form.core) >= MIN_ENCODED_CHARS:
                yield form


def _base64_form(raw: bytes, offset: int, alphabet: str) -> _Form:
    """The characters of ``raw`` base64-encoded when it starts ``offset`` bytes into a 3-byte group."""
    total = 8 * len(raw)
    value = int.from_bytes(raw, "big")
    first, last = 8 * offset, 8 * offset + total  # the secret's bits, counted from the group's start
    core: list[str] = []
    before: frozenset[str] = frozenset()
    after: frozenset[str] = frozenset()
    for char in range(first // 6, -(-last // 6)):
        low, high = 6 * char, 6 * char + 6
        inside_low, inside_high = max(low, first), min(high, last)
        width = inside_high - inside_low
        bits = (value >> (last - inside_high)) & ((1 << width) - 1)
        if width == 6:
            core.append(alphabet[bits])
            continue
        shift = high - inside_high  # the secret's bits sit this far from the character's low end
        fits = frozenset(alphabet[c] for c in range(64) if (c >> shift) & ((1 << width) - 1) == bits)
        if low < first:
            before = fits
        else:
            after = fits
    return _Form("".join(core), before, after, padded=True)

