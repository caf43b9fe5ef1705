"""The Alertmanager webhook payload, version 4, exactly as Alertmanager sends it.

The shape is Alertmanager's own: ``notify/webhook/webhook.go`` (``Message``: the template data plus ``version``,
``groupKey`` and ``truncatedAlerts``) and ``template/template.go`` (``Data`` and ``Alert``), documented in
``docs/configuration.md`` under ``<webhook_config>``. Attributes are snake_case; the JSON names are Alertmanager's.

Fields Alertmanager added later (``notification_reason``, ``routeLabels``) are optional, and fields this model does
not know are ignored, so a newer Alertmanager still gets through. A label map Go serialises as ``null`` (a nil
map) reads as empty. A missing fingerprint (a sender other than Alertmanager) is computed from the labels the way
Alertmanager does, so deduplication still works. Strings Postgres cannot store (NUL, unpaired surrogates) are
refused here, at the door, rather than later when the incident becomes a ticket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

SUPPORTED_VERSION = "4"
AlertStatus = Literal["firing", "resolved"]

# Go's zero time.Time: what Alertmanager sends for an endsAt it does not know.
GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

_FNV64_OFFSET = 14695981039346656037
_FNV64_PRIME = 1099511628211
_LABEL_SEPARATOR = b"\xff"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def label_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's alert fingerprint: FNV-1a 64 over the sorted label names and values, each followed by the
    0xff separator, as 16 hex digits (``model.LabelSet.Fingerprint`` in prometheus/common)."""
    value = _FNV64_OFFSET
    for name in sorted(labels):
        for octet in name.encode() + _LABEL_SEPARATOR + labels[name].encode() + _LABEL_SEPARATOR:
            value = ((value ^ octet) * _FNV64_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def _nil_map_is_empty(value: Any) -> Any:
    return {} if value is None else value


# A Go map Alertmanager never filled serialises as null.
Labels = Annotated[dict[str, str], BeforeValidator(_nil_map_is_empty)]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, value in data.items():
                if any(_UNSTORABLE.search(text) for text in (str(key), *_strings(value))):
                    raise ValueError(f"{key!r} contains a NUL character or an unpaired surrogate, which cannot "
                                     "be stored; remove it")
        return data


def _strings(value: Any) -> Iterator[str]:
    """The strings of a field, keys included; a list's items are models that check their own."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)


class Alert(_Wire):
    status: AlertStatus
    labels: Labels
    annotations: Labels = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(default=GO_ZERO_TIME, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    fingerprint: str = ""

    @model_validator(mode="after")
    def _fill_fingerprint(self) -> Alert:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", label_fingerprint(self.labels))
        return self

    @property
    def ended_at(self) -> datetime | None:
        """When the alert ended, or None when Alertmanager did not say (Go's zero time)."""
        return None if self.ends_at == GO_ZERO_TIME else self.ends_at


class AlertmanagerPayload(_Wire):
    version: str
    group_key: str = Field(alias="groupKey", min_length=1)
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    status: AlertStatus
    receiver: str
    group_labels: Labels = Field(default_factory=dict, alias="groupLabels")
    common_labels: Labels = Field(default_factory=dict, alias="commonLabels")
    common_annotations: Labels = Field(default_factory=dict, alias="commonAnnotations")
    route_labels: Labels = Field(default_factory=dict, alias="routeLabels")
    external_url: str = Field(default="", alias="externalURL")
    notification_reason: str = ""
    alerts: tuple[Alert, ...]

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != SUPPORTED_VERSION:
            raise ValueError(f"webhook payload version {value!r} is not supported; this endpoint takes Alertmanager's "
                             f"version {SUPPORTED_VERSION!r}")
        return value


class PayloadError(ValueError):
    """The body is not an Alertmanager v4 payload; ``problems`` name each field that is wrong and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("not an Alertmanager webhook payload (version 4): " + "; ".join(problems))
        self.problems = problems


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def describe(error: ValidationError, limit: int = 10) -> list[str]:
    """One line per problem: where it is (``alerts[3].startsAt``) and what is wrong with it."""
    problems = []
    for item in error.errors()[:limit]:
        message = str(item.get("msg", "invalid"))
        problems.append(f"{_where(tuple(item.get('loc', ())))}: {message.removeprefix('Value error, ')}")
    if len(error.errors()) > limit:
        problems.append(f"... and {len(error.errors()) - limit} more")
    return problems


def parse_payload(body: bytes | str | dict[str, Any]) -> AlertmanagerPayload:
    """The payload from a request body (bytes or text of JSON) or an already decoded object; :class:`PayloadError`
    says what is wrong."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except UnicodeDecodeError as e:
            raise PayloadError([f"body: not UTF-8 ({e.reason} at byte {e.start})"]) from None
        except json.JSONDecodeError as e:
            raise PayloadError([f"body: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"]) from None
    if not isinstance(body, dict):
        raise PayloadError([f"body: must be a JSON object, not {type(body).__name__}"])
    if "version" in body and body["version"] != SUPPORTED_VERSION:  # another format: its other fields are noise
        raise PayloadError([f"version: {body['version']!r} is not supported; this endpoint takes Alertmanager's "
                            f"webhook payload version {SUPPORTED_VERSION!r}"])
    try:
        return AlertmanagerPayload.model_validate(body)
    except ValidationError as e:
        raise PayloadError(describe(e)) from None
