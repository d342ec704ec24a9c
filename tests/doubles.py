"""HTTP servers on 127.0.0.1 that stand in for channels in tests.

A double records every request and answers from a script (status, headers, body, delay),
then with its default answer. Service-specific doubles subclass it and check what the real
service checks (signatures, body shapes) before answering.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | dict = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (past the client's timeout = "never answers")


@dataclass
class Recorded:
    at: float  # time.time() when the request arrived
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl, urlsplit

        return dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))


class Double:
    def __init__(self, default: Answer | None = None):
        self.default = default or Answer(200, {"ok": True})
        self.script: deque[Answer] = deque()
        self.requests: list[Recorded] = []
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in separate writes: with Nagle on, each answer waits for the
            # client's delayed ACK (about 40 ms), which real services do not add.
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(body) < length:  # the client went away mid-request: a real service takes nothing
                    self.close_connection = True
                    return
                rec = Recorded(time.time(), self.command, self.path, dict(self.headers.items()), body)
                answer = double.handle(rec)
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.body
                if isinstance(payload, dict):
                    payload = json.dumps(payload)
                if isinstance(payload, str):
                    payload = payload.encode()
                try:
                    self.send_response(answer.status)
                    for k, v in answer.headers.items():
                        self.send_header(k, v)
                    if isinstance(answer.body, dict):
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            do_PUT = do_GET = do_DELETE = do_POST  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, *answers: Answer) -> Double:
        self.script.extend(answers)
        return self

    def next_answer(self) -> Answer:
        with self.lock:
            return self.script.popleft() if self.script else self.default

    def handle(self, rec: Recorded) -> Answer:
        with self.lock:
            self.requests.append(rec)
        return self.next_answer()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebhookDouble(Double):
    """Our signed webhook's receiver: verifies the signature, drops repeats by Idempotency-Key."""

    def __init__(self, secret: str, **kwargs):
        super().__init__(**kwargs)
        self.secret = secret
        self.posts: dict[str, int] = {}  # Idempotency-Key -> times received

    def handle(self, rec: Recorded) -> Answer:
        from tests.verify import verify_webhook

        with self.lock:
            self.requests.append(rec)
        if not verify_webhook(self.secret, rec.headers, rec.body):
            return Answer(401, "bad signature")
        answer = self.next_answer()
        if answer.status < 300:
            key = rec.headers.get("Idempotency-Key", "")
            with self.lock:
                self.posts[key] = self.posts.get(key, 0) + 1
        return answer

    def distinct_posts(self) -> int:
        return len(self.posts)
