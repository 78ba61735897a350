"""A reusable fixture HTTP server on 127.0.0.1 for the factory's network sources (and anyone else's tests).

Routes map `"METHOD /path"` (or just `"/path"`, any method) to a handler: a `Reply`, a list of `Reply`s served in
turn (the last one repeats: `[Reply(429, headers={"Retry-After": "1"}), Reply.json({...})]`), or a callable
`handler(req: Request) -> Reply`. A path ending in `*` matches by prefix. Unknown paths answer 404. Every request is
logged in `server.requests` (method, path, query, headers, body).

    with FixtureServer({"/api/papers/2310.06825": Reply.json({"githubRepo": "https://github.com/a/b"})}) as srv:
        httpx.get(srv.url + "/api/papers/2310.06825")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(obj), {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Reply:
        return cls(status, text, {"Content-Type": content_type})


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"null")


Handler = Reply | list[Reply] | Callable[[Request], Reply]


def paged(items: list[dict], *, key: str = "notes", id_field: str = "id", count: bool = True) -> Callable:
    """A handler paging `items` like OpenReview's API v2: `limit` per page, `after` = last id seen, `count` total."""

    def handler(req: Request) -> Reply:
        limit = int(req.arg("limit", "1000"))
        after = req.arg("after")
        ordered = sorted(items, key=lambda x: x[id_field])
        start = next((i + 1 for i, x in enumerate(ordered) if x[id_field] == after), 0) if after else 0
        page = ordered[start : start + limit]
        body: dict[str, Any] = {key: page}
        if count:
            body["count"] = len(items)
        return Reply.json(body)

    return handler


class FixtureServer:
    """A threaded HTTP server on 127.0.0.1 (random port) serving `routes`; use as a context manager."""

    def __init__(self, routes: dict[str, Handler] | None = None):
        self.routes: dict[str, Handler] = dict(routes or {})
        self.requests: list[Request] = []
        self._turns: dict[str, int] = {}
        self._lock = threading.Lock()
        server = self

        class _H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()),
                              self.rfile.read(length) if length else b"")  # fmt: skip
                reply = server._reply(req)
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def _match(self, req: Request) -> tuple[str, Handler] | None:
        for key in (f"{req.method} {req.path}", req.path):
            if key in self.routes:
                return key, self.routes[key]
        for key, handler in self.routes.items():
            pattern = key.split(" ", 1)[-1]
            method = key.split(" ", 1)[0] if " " in key else None
            if pattern.endswith("*") and req.path.startswith(pattern[:-1]) and method in (None, req.method):
                return key, handler
        return None

    def _reply(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            found = self._match(req)
            if found is None:
                return Reply.json({"error": f"no route for {req.method} {req.path}"}, status=404)
            key, handler = found
            if isinstance(handler, list):
                turn = self._turns.get(key, 0)
                self._turns[key] = turn + 1
                return handler[min(turn, len(handler) - 1)]
        if isinstance(handler, Reply):
            return handler
        return handler(req)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def __enter__(self) -> FixtureServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def arxiv_feed(entries: list[dict], *, total: int | None = None, start: int = 0) -> str:
    """An arXiv export API Atom page. Each entry: `id` (e.g. 2310.06825), `title`, optional `summary`, `authors`,
    `published` (ISO date), `doi`, `category`."""
    from xml.sax.saxutils import escape

    items = []
    for e in entries:
        authors = "".join(f"<author><name>{escape(a)}</name></author>" for a in e.get("authors", ["A. Author"]))
        doi = f"<arxiv:doi>{escape(e['doi'])}</arxiv:doi>" if e.get("doi") else ""
        published = e.get("published", "2024-02-01T00:00:00Z")
        items.append(
            f"<entry><id>http://arxiv.org/abs/{e['id']}v1</id><updated>{published}</updated>"
            f"<published>{published}</published><title>{escape(e['title'])}</title>"
            f"<summary>{escape(e.get('summary', ''))}</summary>{authors}{doi}"
            f'<link href="http://arxiv.org/abs/{e["id"]}v1" rel="alternate" type="text/html"/>'
            f'<arxiv:primary_category term="{e.get("category", "cs.LG")}"/>'
            f'<category term="{e.get("category", "cs.LG")}"/></entry>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">'
        f"<opensearch:totalResults>{len(entries) if total is None else total}</opensearch:totalResults>"
        f"<opensearch:startIndex>{start}</opensearch:startIndex>"
        f"<opensearch:itemsPerPage>{len(entries)}</opensearch:itemsPerPage>" + "".join(items) + "</feed>"
    )


def arxiv_api(papers: list[dict]) -> Callable[[Request], Reply]:
    """A handler for `/api/query`: `id_list` lookups, and searches answered with all `papers` (paged by
    `start`/`max_results`), or only those whose title contains the phrase of a `ti:"..."` query."""
    import re

    def handler(req: Request) -> Reply:
        ids = [i for i in (req.arg("id_list") or "").split(",") if i]
        if ids:
            hits = [p for p in papers if p["id"] in ids]
        else:
            query = req.arg("search_query") or ""
            m = re.search(r'ti:"([^"]+)"', query)
            norm = lambda s: " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())  # noqa: E731
            hits = [p for p in papers if not m or norm(m.group(1)) in norm(p["title"])]
        start, size = int(req.arg("start", "0")), int(req.arg("max_results", "100"))
        return Reply.text(
            arxiv_feed(hits[start : start + size], total=len(hits), start=start), content_type="application/atom+xml"
        )

    return handler
