"""Secret scanning: credentials in config, logs, bot streams, ticket results and manifests.

detect-secrets' plugins are instantiated and called directly (``analyze_string``) rather than through
``scan_line``: ``scan_line`` mutates detect-secrets' process-global settings, clears its filter caches on
every line, and runs the entropy plugins in "eager" mode, which yields every unquoted word without the
entropy limit. Calling the plugins directly keeps the scan thread-safe, offline (no verification requests)
and fast enough for logs.

A finding never carries a secret: it names the secret by the first characters, its length and a SHA-256
prefix, so the same secret in the same place keeps its fingerprint and a rotated one is a new finding.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
    HighEntropyStringsPlugin,
)
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector
from detect_secrets.util.filetype import FileType, determine_file_type

from oshal.security.findings import Finding, Severity

__all__ = ["SOURCES", "Blob", "OshalKeyDetector", "scan_blobs"]

SOURCES = ("config", "logs", "streams", "tickets", "manifests")


@dataclass(frozen=True, slots=True)
class Blob:
    """Text from one place. A ``location`` ending in ``:N`` means the text starts at line N."""

    source: str
    location: str
    text: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown secret source {self.source!r}; one of {', '.join(SOURCES)}")


class _Detector(Protocol):
    @property
    def secret_type(self) -> str: ...

    def analyze_string(self, string: str) -> Iterable[str]: ...


class OshalKeyDetector:
    """Plaintext oshal API keys (``osk_<12 hex prefix>_<secret>``); only their SHA-256 digest is ever stored."""

    secret_type = "oshal API Key"  # noqa: S105 (a label, not a password)
    pattern = re.compile(r"\bosk_[0-9a-f]{12}_[A-Za-z0-9_\-]{20,}")

    def analyze_string(self, string: str) -> Iterator[str]:
        return iter(self.pattern.findall(string))


class _WholeMatch:
    """Reports the whole match of a detector whose capture group is only the token's prefix.

    detect-secrets 1.5 yields the captured group, which for GitHub and GitLab tokens is ``ghp``/``glpat``:
    every token would share one fingerprint and a rotated token would look unchanged.
    """

    def __init__(self, detector: RegexBasedDetector) -> None:
        self.secret_type: str = detector.secret_type
        self.patterns: tuple[re.Pattern[str], ...] = tuple(detector.denylist)

    def analyze_string(self, string: str) -> Iterator[str]:
        return (match.group(0) for pattern in self.patterns for match in pattern.finditer(string))


_VENDOR_DETECTORS: tuple[_Detector, ...] = (
    AWSKeyDetector(), ArtifactoryDetector(), AzureStorageKeyDetector(), BasicAuthDetector(),
    DiscordBotTokenDetector(), _WholeMatch(GitHubTokenDetector()), _WholeMatch(GitLabTokenDetector()),
    IbmCloudIamDetector(), JwtTokenDetector(), MailchimpDetector(), NpmDetector(), OpenAIDetector(),
    PrivateKeyDetector(), SendGridDetector(), SlackDetector(), SoftlayerDetector(), SquareOAuthDetector(),
    StripeDetector(), TelegramBotTokenDetector(), TwilioKeyDetector(), OshalKeyDetector(),
)
_KEYWORD_TYPE: str = keyword.KeywordDetector.secret_type
# Hex first: a hex string is also base64, but only the hex charset's limit (3.0) is meaningful for it.
_ENTROPY: tuple[HighEntropyStringsPlugin, ...] = (HexHighEntropyString(limit=3.0),
                                                  Base64HighEntropyString(limit=4.5))
_ENTROPY_CHARSETS = {plugin.secret_type: frozenset(plugin.charset) for plugin in _ENTROPY}

_PRIVATE_KEY = PrivateKeyDetector.secret_type
_OSHAL_KEY = OshalKeyDetector.secret_type
_GENERIC_TYPES = frozenset({_KEYWORD_TYPE, *(plugin.secret_type for plugin in _ENTROPY)})
# detect-secrets 1.5 has no GCP detector; GCP service-account keys are caught as private keys.
_CRITICAL_TYPES = frozenset({
    _PRIVATE_KEY, _OSHAL_KEY, AWSKeyDetector.secret_type, AzureStorageKeyDetector.secret_type,
    IbmCloudIamDetector.secret_type, OpenAIDetector.secret_type,
    StripeDetector.secret_type,  # the detector matches live keys (sk_live_/rk_live_) only
})

# Generic detection runs on an ASCII-lowercased copy of each line (same length, so spans carry over):
# case-sensitive patterns on it are about ten times faster than re.IGNORECASE on the original.
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# Literal substrings that every keyword-detector match contains: lines without one skip its patterns.
_KEYWORD_STEMS = ("key", "pass", "pwd", "secret", "contrase")
_KEYWORD_NAME = re.compile("|".join(keyword.DENYLIST))
_SECRET_NAME = re.compile("|".join((*keyword.DENYLIST, "token", "access_?key", "signing_?key", "credential", "auth")))
# What follows a secret-sounding word when a value is assigned to it: `_token": "v"`, `word=v`, `: Bearer v`.
_ASSIGNED_VALUE = re.compile(
    r"(?P<rest>[\w.\-]*)[\"'\]]*\s*(?::=|=>|[:=])\s*@?(?P<quote>[\"'`]?)(?:(?:bearer|token)\s+)?"
    r"(?P<value>[^\s\"'`,;&]{6,})(?P=quote)"
)
_NAME_BEFORE_VALUE = re.compile(
    r"([a-z_][\w.\-]*)[\"'\]]*\s*(?::=|=>|==|[:=])\s*@?[\"'`]?(?:(?:bearer|token)\s+)?\Z"
)
_IDENTIFIER_CHARS = frozenset(string.ascii_lowercase + string.digits + "_.-")
# Names that hold a pointer to a secret or facts about it, not the secret (secret_ref, token_id, password_file,
# password_changed_at).
_REFERENCE_NAME = re.compile(
    r"(?:^|[_.\-])(?:ids?|names?|refs?|path|file|env|arn|url|uri|type|kind|count|length|version|ttl|at|expiry"
    r"|expires|policy|hint|enabled|required)$"
)
_PLACEHOLDERS = frozenset({"none", "null", "nil", "true", "false", "undefined", "empty"})
_MIN_GENERIC_LENGTH = 6

_LINE_SUFFIX = re.compile(r":(\d+)$")
_STREAM_ENTRY_ID = re.compile(r"\s\d+-\d+$")
_PEM_BLOCK = re.compile(r"-----BEGIN[^-]*-----.*?-----END[^-]*-----", re.DOTALL)
_PEM_CONTINUATION = re.compile(r"[A-Za-z0-9+/=]+|[A-Za-z\-]+: .*|-----END.*")  # body, Proc-Type headers, footer
_MAX_PEM_LINES = 200


@dataclass(frozen=True, slots=True)
class _Hit:
    kind: str
    secret: str


@dataclass(frozen=True, slots=True)
class _KeywordRules:
    """How keyword hits are found in one blob."""

    patterns: tuple[tuple[re.Pattern[str], int], ...]  # detect-secrets' patterns, compiled for lowercased lines
    unquoted_assignments: bool  # `db_password=s3cret` outside config files (config has its own unquoted patterns)


# --- scanning -------------------------------------------------------------------------------------


def scan_blobs(blobs: Iterable[Blob], *, allow: Collection[str] = ()) -> list[Finding]:
    """Findings for every credential in ``blobs``, most severe first, one per secret per place.

    ``allow`` holds SHA-256 hex digests of secrets marked as false positives; the 16-character prefix
    shown in a finding's subject is accepted as well.
    """
    allowed = {digest.lower() for digest in allow}
    best: dict[str, Finding] = {}
    for blob in blobs:
        multiline = "\n" in blob.text.rstrip("\n")
        for line_index, hit in _blob_hits(blob):
            digest = hashlib.sha256(hit.secret.encode()).hexdigest()
            if digest in allowed or digest[:16] in allowed:
                continue
            finding = _finding(blob, line_index, hit, digest, multiline=multiline)
            current = best.get(finding.subject)
            if current is None or finding.severity.rank > current.severity.rank:
                best[finding.subject] = finding
    return sorted(best.values(), key=lambda finding: -finding.severity.rank)


def _blob_hits(blob: Blob) -> Iterator[tuple[int, _Hit]]:
    rules = _keyword_rules(blob.source, determine_file_type(_split_line(blob.location)[0]))
    lines = blob.text.splitlines()
    for index, line in enumerate(lines):
        for hit in _line_hits(line, rules):
            if hit.kind == _PRIVATE_KEY:
                hit = _Hit(hit.kind, _private_key_material(lines, index))
            yield index, hit


@functools.cache
def _keyword_rules(source: str, filetype: FileType) -> _KeywordRules:
    """Config files may hold unquoted values (``password: x``, per file type); detect-secrets' patterns for
    other text need quotes, so log-style ``name=value`` pairs are left to ``_assignment_hits``."""
    if source in ("config", "manifests"):
        mapping = keyword.REGEX_BY_FILETYPE.get(filetype, keyword.CONFIG_DENYLIST_REGEX_TO_GROUP)
        return _KeywordRules(_case_folded(mapping), unquoted_assignments=False)
    return _KeywordRules(_case_folded(keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP), unquoted_assignments=True)


def _case_folded(mapping: dict[re.Pattern[str], int]) -> tuple[tuple[re.Pattern[str], int], ...]:
    """The patterns without ``re.IGNORECASE``, to run on an ASCII-lowercased line.

    Their keywords are lowercase literals and their value classes are case-neutral, so this finds the same
    matches about ten times faster, which is most of the cost of scanning a log. (Two of the patterns were
    case-sensitive; folded, they also match upper-case names such as ``PASSWORD``, which is wanted.)
    """
    return tuple((re.compile(pattern.pattern, pattern.flags & ~re.IGNORECASE), group)
                 for pattern, group in mapping.items())


def _line_hits(line: str, rules: _KeywordRules) -> list[_Hit]:
    vendor = [_Hit(detector.secret_type, _without_delimiters(secret))
              for detector in _VENDOR_DETECTORS
              for secret in detector.analyze_string(line)
              if not heuristic.is_sequential_string(secret)]
    generic = [hit for hit in _generic_hits(line, rules)
               if not any(hit.secret in found.secret or found.secret in hit.secret for found in vendor)]
    return vendor + generic


def _without_delimiters(secret: str) -> str:
    # Some detectors (Artifactory) include the quote, space or `=` around the token in their match.
    return secret.lstrip(" \t\"'=:").rstrip(" \t\"'")


def _generic_hits(line: str, rules: _KeywordRules) -> list[_Hit]:
    lowered = line.translate(_ASCII_LOWER)
    hits: list[_Hit] = []
    if any(stem in lowered for stem in _KEYWORD_STEMS):
        hits += [_Hit(_KEYWORD_TYPE, secret)
                 for secret in _keyword_values(line, lowered, rules.patterns)
                 if not _REFERENCE_NAME.search(_assigned_name(lowered, line.find(secret)))]
    hits += _assignment_hits(line, lowered, unquoted_keywords=rules.unquoted_assignments)
    hits = [hit for hit in hits if _looks_like_secret(hit.secret)]
    # Checked last because it is the slowest test and most lines have no candidate at all.
    if hits and heuristic.is_indirect_reference(line):  # password = os.environ["X"], token = vault.read(...)
        return []
    return hits


def _keyword_values(line: str, lowered: str, patterns: tuple[tuple[re.Pattern[str], int], ...]) -> Iterator[str]:
    """What ``KeywordDetector.analyze_string`` yields: each pattern's first match, cut from the original line."""
    for pattern, group in patterns:
        match = pattern.search(lowered)
        if match:
            yield line[match.start(group):match.end(group)]


def _assignment_hits(line: str, lowered: str, *, unquoted_keywords: bool) -> list[_Hit]:
    """Values assigned to a secret-sounding name: high-entropy ones, and (in logs) any value of a keyword name.

    Entropy alone is never enough: logs are full of random ids. detect-secrets' keyword patterns need quotes
    outside config files, which misses structlog's console format (``db_password=s3cret``); the unquoted
    keyword assignments are caught here.
    """
    hits = []
    for word in _SECRET_NAME.finditer(lowered):
        assignment = _ASSIGNED_VALUE.match(lowered, word.end())
        if assignment is None:
            continue
        name = lowered[_identifier_start(lowered, word.start()):assignment.end("rest")]
        if _REFERENCE_NAME.search(name):
            continue
        value = line[assignment.start("value"):assignment.end("value")]
        kind = _high_entropy_type(value)
        if kind is None and unquoted_keywords and _KEYWORD_NAME.search(name):
            kind = _KEYWORD_TYPE
        if kind is not None:
            hits.append(_Hit(kind, value))
    return hits


def _identifier_start(lowered: str, index: int) -> int:
    while index > 0 and lowered[index - 1] in _IDENTIFIER_CHARS:
        index -= 1
    return index


def _high_entropy_type(value: str) -> str | None:
    for plugin in _ENTROPY:
        if (set(value) <= _ENTROPY_CHARSETS[plugin.secret_type]
                and plugin.calculate_shannon_entropy(value) > plugin.entropy_limit):
            return plugin.secret_type
    return None


def _assigned_name(lowered: str, value_index: int) -> str:
    """The name a value at ``value_index`` is assigned to, or "" (names are assumed under 128 characters)."""
    match = _NAME_BEFORE_VALUE.search(lowered, max(0, value_index - 128), max(0, value_index))
    return match.group(1) if match else ""


def _looks_like_secret(value: str) -> bool:
    lowered = value.lower()
    return not (
        len(value) < _MIN_GENERIC_LENGTH
        or lowered in _PLACEHOLDERS
        or "redacted" in lowered
        or "****" in value
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_sequential_string(value)
    )


def _private_key_material(lines: list[str], start: int) -> str:
    """The whole PEM block, so two different keys (or a rotated one) get different fingerprints.

    The header line alone would be the same for every key; a block escaped onto one line (JSON) is found too.
    """
    block = [lines[start].strip()]
    if "-----END" not in block[0]:
        for line in lines[start + 1:start + _MAX_PEM_LINES]:
            stripped = line.strip()
            if not _PEM_CONTINUATION.fullmatch(stripped):
                break
            block.append(stripped)
            if stripped.startswith("-----END"):
                break
    text = "\n".join(block)
    match = _PEM_BLOCK.search(text)
    return match.group(0) if match else text


# --- findings -------------------------------------------------------------------------------------


def _finding(blob: Blob, line_index: int, hit: _Hit, digest: str, *, multiline: bool) -> Finding:
    base, first_line = _split_line(blob.location)
    line = first_line + line_index
    location = f"{base}:{line}" if multiline or first_line > 1 else blob.location
    # Entry ids are to a stream what line numbers are to a file: the same leak in many entries is one finding.
    place = _STREAM_ENTRY_ID.sub("", base) if blob.source == "streams" else base
    return Finding(
        scan="secrets",
        check=f"secret.{_slug(hit.kind)}",
        severity=_severity(hit.kind),
        title=f"{hit.kind} in {blob.source}",
        subject=f"{blob.source}:{place}:{digest[:16]}",
        remediation=f"{_rotation(hit)} Then {_removal(blob.source, place)}.",
        evidence={"source": blob.source, "location": location, "type": hit.kind, "line": line,
                  "redacted": _redact(hit.secret)},
    )


def _split_line(location: str) -> tuple[str, int]:
    match = _LINE_SUFFIX.search(location)
    if match is None:
        return location, 1
    return location[:match.start()], int(match.group(1))


def _slug(kind: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")


def _severity(kind: str) -> Severity:
    if kind in _CRITICAL_TYPES:
        return Severity.CRITICAL
    if kind in _GENERIC_TYPES:
        return Severity.MEDIUM
    return Severity.HIGH


def _redact(secret: str) -> str:
    # Never more than a quarter of the secret, so a short password is not half given away.
    return f"{secret[:min(4, len(secret) // 4)]}…({len(secret)} chars)"


def _rotation(hit: _Hit) -> str:
    if hit.kind == _OSHAL_KEY:
        # The 12-hex prefix is the key's public handle (stored in plaintext, shown by `oshal key list`).
        prefix = hit.secret.split("_")[1]
        return (f"Revoke the oshal API key with prefix {prefix}: find its id with `oshal key list`, "
                "run `oshal key revoke ID` and issue the owner a new key.")
    if hit.kind == _PRIVATE_KEY:
        return "Replace the key pair and remove the old public key wherever it is trusted."
    if hit.kind in _GENERIC_TYPES:
        return "Confirm this is a real credential; if it is, rotate it at its issuer."
    return f"Rotate the {hit.kind} at its issuer and treat the old value as compromised."


def _removal(source: str, place: str) -> str:
    return {
        "config": f"remove it from {place} and load it from the secret store (envelope store or Vault)",
        "manifests": f"remove it from the manifest {place} and reference a connector secret instead",
        "logs": f"purge it from {place} and any rotated or shipped copies, and fix the code path that logged it",
        "streams": f"delete the affected entries from {place} (XDEL) and fix the bot that wrote it",
        "tickets": f"redact it from {place} and anything copied from that ticket",
    }[source]
