"""The one exception root. Every message says what failed, on what, and what to do about it."""

from __future__ import annotations


class OshalError(Exception):
    """Root of every error oshal raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict[str, str]:
        body = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        return body


class Invalid(OshalError):
    """The caller sent something malformed or out of range."""

    code = "invalid"


class TooLarge(Invalid):
    """The caller sent more than a configured limit allows."""

    code = "too_large"


class Unauthorized(OshalError):
    """No valid credential was presented."""

    code = "unauthorized"


class Forbidden(OshalError):
    """The credential is valid but does not allow this action."""

    code = "forbidden"


class NotFound(OshalError):
    """The addressed thing does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(OshalError):
    """The request contradicts the current state."""

    code = "conflict"


class RateLimited(OshalError):
    """The caller sent more requests than its rate limit allows; ``retry_after_s`` says when to retry."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


class BudgetExceeded(OshalError):
    """Spending this would exceed a budget (or a ticket ran away); the work waits, paused, for more budget."""

    code = "budget_exceeded"


class Unavailable(OshalError):
    """A dependency (database, Redis, provider) cannot be reached right now."""

    code = "unavailable"


class ConfigError(OshalError):
    """Settings are missing or inconsistent; names the setting to fix."""

    code = "config"
