"""The one exception root. Every message says what failed, on what, and what to do about it."""

from __future__ import annotations

from typing import Any


class OshalError(Exception):
    """Root of every error oshal raises on purpose. A subclass names its ``code`` in its class line:
    ``class NotFound(OshalError, code="not_found")``."""

    code = "error"

    def __init_subclass__(cls, *, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class Invalid(OshalError, code="invalid"):
    """The caller sent something malformed or out of range."""


class TooLarge(Invalid, code="too_large"):
    """The caller sent more than a configured limit allows."""


class Unauthorized(OshalError, code="unauthorized"):
    """No valid credential was presented."""


class Forbidden(OshalError, code="forbidden"):
    """The credential is valid but does not allow this action."""


class NotFound(OshalError, code="not_found"):
    """The addressed thing does not exist (or is not visible to the caller)."""


class Conflict(OshalError, code="conflict"):
    """The request contradicts the current state."""


class RateLimited(OshalError, code="rate_limited"):
    """The caller sent more requests than its rate limit allows; ``retry_after_s`` says when to retry."""

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class BudgetExceeded(OshalError, code="budget_exceeded"):
    """Spending this would exceed a budget (or a ticket ran away); the work waits, paused, for more budget."""


class Unavailable(OshalError, code="unavailable"):
    """A dependency (database, Redis, provider) cannot be reached right now."""


class ConfigError(OshalError, code="config"):
    """Settings are missing or inconsistent; names the setting to fix."""


class HarnessError(OshalError, code="harness"):
    """A job failed inside a bot's harness. ``retryable`` says whether provider retries were exhausted."""

    def __init__(self, message: str, *, retryable: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
