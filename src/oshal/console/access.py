"""Who may open each console page or post each console form: the console's rows of the access table.

Checked at start-up together with the API's (:mod:`oshal.api.access`): every console route guarded exactly as its
row says, every row served. The console authenticates by session cookie, and every form carries a CSRF token.
"""

from __future__ import annotations

from oshal.api.access import Access, Audience, Scope

_PUBLIC = Access(Audience.PUBLIC, Scope.NONE)
_MEMBER = Access(Audience.MEMBER, Scope.TENANT)
_MEMBER_READS_SHARED = Access(Audience.MEMBER, Scope.SHARED)
_OPERATOR = Access(Audience.OPERATOR, Scope.TENANT)
_PLATFORM = Access(Audience.PLATFORM, Scope.PLATFORM)
_PLATFORM_VERIFIES = Access(Audience.PLATFORM, Scope.PLATFORM, changes=False)

STATIC_PATH = "/static/console"

CONSOLE_ROUTES: dict[tuple[str, str], Access] = {
    # signing in and out
    ("GET", "/login"): _PUBLIC,
    ("POST", "/login"): _PUBLIC,
    ("POST", "/logout"): _MEMBER,
    # the tenant's own work
    ("GET", "/"): _MEMBER,
    ("GET", "/tickets"): _MEMBER,
    ("POST", "/tickets"): _MEMBER,
    ("GET", "/tickets/{ticket_id}"): _MEMBER,
    ("GET", "/tickets/{ticket_id}/live"): _MEMBER,
    ("GET", "/tickets/{ticket_id}/artifacts/{name}"): _MEMBER,
    ("POST", "/tickets/{ticket_id}/replay"): _MEMBER,
    ("POST", "/tickets/{ticket_id}/cancel"): _MEMBER,
    ("GET", "/approvals"): _MEMBER,
    ("POST", "/approvals/tickets/{ticket_id}/{decision}"): _OPERATOR,
    ("POST", "/approvals/tools/{approval_id}/{decision}"): _OPERATOR,
    ("GET", "/bots"): _MEMBER_READS_SHARED,
    ("GET", "/cost"): _MEMBER,
    ("GET", "/connectors"): _MEMBER_READS_SHARED,
    ("GET", "/apps"): _MEMBER,
    # the platform's own state: platform operators (an operator key of the system tenant)
    ("GET", "/security"): _PLATFORM,
    ("POST", "/security/scan"): _PLATFORM,
    ("POST", "/security/audit-verify"): _PLATFORM_VERIFIES,
    ("POST", "/security/findings/{fingerprint}/assess"): _PLATFORM,
    ("GET", "/architecture"): _PLATFORM,
    ("GET", "/architecture/{view}"): _PLATFORM,
    ("GET", "/architecture/{view}.{fmt}"): _PLATFORM,
}
