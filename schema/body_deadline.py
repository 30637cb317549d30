"""A request body must arrive in time: a client trickling it is cut off with 408.

uvicorn waits for a body as long as the client keeps the connection open, so a few hundred
connections sending a byte now and then would each hold a request (and whatever it holds:
a rate-limit slot, a database session) forever. This middleware bounds the time the
application spends *waiting* for body bytes: `timeout` seconds, plus one second for every
`min_rate` bytes received, so a large upload at a reasonable speed is never cut while a
trickle is. Time the application spends processing what it read is not counted (uvicorn
stops reading from the socket meanwhile: the client is not to blame).

When the budget is spent the client gets 408 in its face's error shape with
`Connection: close` (uvicorn then closes the connection), and the application sees the
client as gone (`http.disconnect`); whatever it answers after that goes nowhere.

Headers are not covered: uvicorn has no per-request header timeout; see
docs/operations.md ("Behind a reverse proxy") for the deployment that bounds them.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schema.rest_errors import face_error

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = "REQUEST_TIMEOUT"


class BodyDeadline:
    def __init__(self, app: ASGIApp, *, timeout: float, min_rate: int) -> None:
        self.app = app
        self.timeout = timeout
        self.min_rate = max(int(min_rate), 1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.timeout <= 0:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        waited = 0.0
        received = 0
        complete = False
        cut = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal waited, received, complete, cut
            if cut:
                return {"type": "http.disconnect"}
            if complete:
                return await receive()  # the body is in; what follows is a disconnect, if anything
            budget = self.timeout + received / self.min_rate - waited
            began = loop.time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(budget, 0.0))
            except TimeoutError:
                cut = True
                log.info(
                    "request body too slow: %s %s, %d bytes in %.1f s",
                    scope.get("method"),
                    scope.get("path"),
                    received,
                    waited + loop.time() - began,
                )
                if not started:
                    response = face_error(
                        scope.get("path", ""),
                        408,
                        REQUEST_TIMEOUT,
                        "The request body did not arrive in time.",
                        headers={"Connection": "close"},
                    )
                    await response(scope, _nothing, send)
                return {"type": "http.disconnect"}
            waited += loop.time() - began
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut:
                return  # the 408 went out; the application's late answer goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:  # noqa: BLE001 - once cut, the application's failure to read is expected
            if not cut:
                raise
            log.debug("after a body timeout", exc_info=True)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
