"""Partners' systems for tests: small real HTTP servers on loopback (no mocks in place of HTTP).

* `OperatorApi` - a walking app's API: pages of activity (`GET /activity`, its own field
  names), reconciliation reports (`GET /reports`), a statement inbox (`POST /statements`).
  It can fail (`fail_next`) or hang past the caller's timeout (`hang_next`) on demand.
* `WebhookReceiver` - records every request (headers, body) and answers 204, or fails the
  next N times (`fail_next`), or answers 410 Gone (`gone`).

Each runs a Starlette app under uvicorn in a thread of its own; use the fixtures
`operator_api` and `webhook_receiver` (import them into the test module).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


class SimServer:
    """A Starlette app on a free loopback port, served by uvicorn in a daemon thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app(),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def app(self) -> Starlette:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class _Trouble:
    failures: int = 0
    status: int = 503
    hangs: int = 0
    hang_seconds: float = 0.0

    async def apply(self) -> Response | None:
        """Called under no lock; returns the failing answer, if this request fails."""
        if self.hangs > 0:
            self.hangs -= 1
            await asyncio.sleep(self.hang_seconds)
            return JSONResponse({"error": "slow"}, status_code=504)
        if self.failures > 0:
            self.failures -= 1
            return JSONResponse({"error": "unavailable"}, status_code=self.status)
        return None


class OperatorApi(SimServer):
    """A walking app's API with its own names: userId, day, stepCount, meters."""

    def __init__(self) -> None:
        self.activity: list[dict] = []
        self.reports: list[dict] = []
        self.statements: list[dict] = []
        self.requests: list[tuple[str, dict]] = []
        self.trouble = _Trouble()
        super().__init__()

    # -------------------------------------------------------- test controls

    def add_activity(self, user: str, day: str, steps: int, meters: int) -> None:
        with self.lock:
            self.activity.append({"userId": user, "day": day, "stepCount": steps, "meters": meters})

    def add_report(self, agreement: str, start: str, end: str, lines: list[dict], report_id: str | None = None) -> None:
        with self.lock:
            self.reports.append(
                {
                    "id": report_id or f"r{len(self.reports) + 1}",
                    "agreement": agreement,
                    "from": start,
                    "to": end,
                    "lines": lines,
                }
            )

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.trouble.failures, self.trouble.status = n, status

    def hang_next(self, n: int, seconds: float) -> None:
        with self.lock:
            self.trouble.hangs, self.trouble.hang_seconds = n, seconds

    def healthy(self) -> None:
        with self.lock:
            self.trouble = _Trouble()

    # -------------------------------------------------------- the app

    def app(self) -> Starlette:
        async def paged(request: Request, items: list[dict], key: str, next_key: str, more_key: str) -> Response:
            self.requests.append((request.url.path, dict(request.query_params)))
            failing = await self.trouble.apply()
            if failing is not None:
                return failing
            if request.headers.get("authorization") != "Bearer sim-token":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            start = int(request.query_params.get("cursor") or 0)
            limit = int(request.query_params.get("limit") or 2)
            with self.lock:
                page = items[start : start + limit]
                end = start + len(page)
                more = end < len(items)
            return JSONResponse({key: page, next_key: str(end), more_key: more})

        async def activity(request: Request) -> Response:
            return await paged(request, self.activity, "data", "next_cursor", "has_more")

        async def reports(request: Request) -> Response:
            return await paged(request, self.reports, "reports", "next", "more")

        async def statements(request: Request) -> Response:
            failing = await self.trouble.apply()
            if failing is not None:
                return failing
            body = await request.body()
            with self.lock:
                self.statements.append({"headers": dict(request.headers), "body": body})
            return JSONResponse({"ok": True}, status_code=201)

        async def ping(request: Request) -> Response:
            return JSONResponse({"ok": True})

        return Starlette(
            routes=[
                Route("/activity", activity),
                Route("/reports", reports),
                Route("/statements", statements, methods=["POST"]),
                Route("/ping", ping),
            ]
        )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver(SimServer):
    """Records every webhook; answers 204, or fails on demand."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failures = 0
        self.failure_status = 500
        self.is_gone = False
        super().__init__()

    def fail_next(self, n: int, status: int = 500) -> None:
        with self.lock:
            self.failures, self.failure_status = n, status

    def gone(self) -> None:
        with self.lock:
            self.is_gone = True

    def ids(self) -> list[str]:
        with self.lock:
            return [r.headers.get("webhook-id") for r in self.received]

    def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        """Block until `n` requests have arrived (or raise after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.received) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {n} webhooks, got {len(self.received)}")
                self.changed.wait(left)
            return list(self.received)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            with self.changed:
                if self.is_gone:
                    status = 410
                elif self.failures > 0:
                    self.failures -= 1
                    status = self.failure_status
                else:
                    status = 204
                self.received.append(Received(request.url.path, dict(request.headers), body, status))
                self.changed.notify_all()
            return Response(status_code=status)

        return Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])])


@pytest.fixture
def operator_api():
    api = OperatorApi().start()
    yield api
    api.stop()


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


__all__ = ["OperatorApi", "Received", "WebhookReceiver", "operator_api", "webhook_receiver"]
