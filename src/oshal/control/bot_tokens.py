"""Bot identity for the tool gateway: a token per bot, derived from a control-plane key and never stored.

A bot proves who it is with its token, and proves which ticket it works on with the dispatch signature of
the envelope it received; the gateway checks both before a tool call goes anywhere.
"""

from __future__ import annotations

import hashlib
import hmac

from oshal.errors import Unauthorized
from oshal.mesh.signing import checked_key


class BotTokens:
    def __init__(self, key: bytes) -> None:
        self._key = checked_key(key, "bot token")

    def issue(self, bot: str) -> str:
        return f"{bot}.{hmac.new(self._key, f'bot:{bot}'.encode(), hashlib.sha256).hexdigest()[:40]}"

    def verify(self, token: str | None) -> str:
        """The bot's name, or Unauthorized."""
        if not token or "." not in token:
            raise Unauthorized("missing or malformed bot token", hint="nodes get theirs from `oshal up`")
        bot = token.rsplit(".", 1)[0]
        if not hmac.compare_digest(self.issue(bot), token):
            raise Unauthorized("invalid bot token")
        return bot
