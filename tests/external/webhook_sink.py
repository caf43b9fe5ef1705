"""A webhook receiver (what a chat or paging service exposes): records each POSTed JSON body, answers 200."""

from __future__ import annotations

from external._loopback import LoopbackServer, RecordedRequest, Reply


class WebhookSink(LoopbackServer):
    def respond(self, request: RecordedRequest, index: int) -> Reply:
        return Reply(200, {"ok": True})
