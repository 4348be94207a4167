"""Request-size limit as plain ASGI middleware: an oversized body is refused before it is read.

A declared ``Content-Length`` over the limit is answered 413 at once (nothing is read or
spooled to disk); a chunked body without one is counted as it arrives and cut off as soon
as it passes the limit.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file itself


def too_large_message(limit_bytes: int) -> str:
    return (
        f"the upload is larger than this server's limit of {limit_bytes / 2**20:g} MB; "
        "send a smaller or more compressed image (or start the server with a larger --max-upload-mb)."
    )


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (+ multipart slack) with a 413 JSON error."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit = max_bytes + MULTIPART_SLACK

    async def _refuse(self, send: Any) -> None:
        body = json.dumps({"error": too_large_message(self.max_bytes)}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # FastAPI re-raises HTTPException from body parsing as is
                    raise HTTPException(413, too_large_message(self.max_bytes))
            return message

        await self.app(scope, counted, send)
