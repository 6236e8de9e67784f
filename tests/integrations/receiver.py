"""A webhook receiver for the tests: an HTTP server on 127.0.0.1 in a
thread of the test process. Each path behaves as told (`answers`): a list
of status codes to give in turn (the last repeats), or "sleep" to hold the
request longer than any timeout. Every request is recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    answers: dict[str, list[int] | str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    sleep_seconds: float = 30.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    count = len([r for r in receiver.received if r.path == self.path])
                    receiver.received.append(
                        Received(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            time.monotonic(),
                        )
                    )
                answer = receiver.answers.get(self.path, [200])
                if answer == "sleep":
                    receiver.release.wait(receiver.sleep_seconds)
                    code = 200
                else:
                    code = answer[min(count, len(answer) - 1)]
                try:
                    self.send_response(code)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
