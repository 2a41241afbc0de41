"""A tiny HTTP receiver for tests: records every JSON POST, answers with a chosen status.

    with WebhookReceiver() as hook:
        hook.url                           # http://127.0.0.1:<port>
        hook.status["/reject"] = 422       # answer POSTs to that path with 422
        hook.wait_for(lambda posts: len(posts) >= 2, timeout=30)

Alertmanager's webhook notifications and the forwarder's generic webhook both post
here; :meth:`WebhookReceiver.alerts` flattens Alertmanager notifications to
``(path, status, labels)`` per alert.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

#: Seconds between two checks of a condition.
POLL = 0.1


@dataclass(frozen=True)
class Post:
    """One request the receiver got: its path, parsed JSON body and the status it answered."""

    path: str
    body: Any
    answered: int


class WebhookReceiver:
    """An HTTP server on a free loopback port, run in a daemon thread."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self._posts: list[Post] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def posts(self, path: str | None = None) -> list[Post]:
        with self._lock:
            return [p for p in self._posts if path is None or p.path == path]

    def alerts(self, path: str | None = None) -> list[tuple[str, str, dict[str, str]]]:
        """Each alert of each Alertmanager notification: (path, status, labels)."""
        return [
            (post.path, alert["status"], alert["labels"])
            for post in self.posts(path)
            if isinstance(post.body, dict)
            for alert in post.body.get("alerts", [])
        ]

    def wait_for(self, condition: Callable[[list[Post]], bool], timeout: float) -> list[Post]:
        """The posts once ``condition(posts)`` holds; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition(posts := self.posts()):
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met in {timeout:.0f}s; posts: {posts!r:.3000}")
            time.sleep(POLL)
        return posts

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                answered = receiver.status.get(self.path, 200)
                with receiver._lock:
                    receiver._posts.append(Post(self.path, body, answered))
                self.send_response(answered)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
