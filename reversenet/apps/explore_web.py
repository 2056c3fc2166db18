"""`reversenet explore`, its web side: a FastAPI app over an `Explorer`, served by uvicorn.

Safe by default: the server binds to loopback unless told otherwise; every request's ``Host``
must be one the server was started for (a page elsewhere cannot reach it by DNS rebinding);
what writes (uploads, saving pictures) needs the token printed in the URL; photos are named by
id, never by path; a bad request gets a 4xx with a one-line reason, a failure a 500 with one
line, and the server keeps serving. Model, weights and output folder come from the command
line only. The model's work runs in a worker thread, one computation at a time; a click that
was waiting when a newer one arrived is answered 409 (superseded) without being computed.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.middleware.trustedhost import TrustedHostMiddleware

from ..choices import RENDERERS, VARIANTS
from ..errors import ReversenetError, first_line
from .explore import UPLOAD_BYTES, Explorer


class Refused(Exception):
    """A request answered with a 4xx and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def app(explorer: Explorer, *, token: str, hosts: list[str], out: Path) -> FastAPI:
    """The web app: the page, and the API the page calls."""
    web = FastAPI(title="reversenet explore", docs_url=None, redoc_url=None, openapi_url=None)
    web.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    page = jinja2.Environment(loader=jinja2.PackageLoader("reversenet", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined).get_template("explore.html.j2")  # fmt: skip

    @web.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status)

    @web.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:  # never a traceback
        return JSONResponse({"detail": f"{type(exc).__name__}: {first_line(exc)}"}, status_code=500)

    async def compute(fn: Any, *args: Any, click: int | None = None) -> Any:
        """`fn(*args)` in a worker thread, one at a time; reasons for bad input as 4xx."""

        def work() -> Any:
            with explorer.lock:
                if click is not None and click < explorer.latest:
                    raise Refused(409, "superseded by a newer click")
                return fn(*args)

        try:
            return await run_in_threadpool(work)
        except KeyError as exc:
            raise Refused(404, f"no photo {exc.args[0]!r}") from None
        except ReversenetError as exc:  # UsageError and failures of the input alike: the request's
            raise Refused(400, first_line(exc)) from None

    def writer(request: Request) -> None:
        if not secrets.compare_digest(request.query_params.get("token", ""), token):
            raise Refused(403, "this needs the token in the URL the server printed")

    @web.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page.render(variants=VARIANTS, renderers=RENDERERS)

    @web.get("/api/state")
    async def state() -> dict[str, Any]:
        return {"model": explorer.network.name, "default_layer": explorer.default_layer,
                "layers": [{"name": n, "shape": list(s)} for n, s in explorer.layers.items()],
                "photos": [{"id": i, "name": p.name} for i, p in explorer.photos.items()],
                "variants": list(VARIANTS), "renderers": list(RENDERERS)}  # fmt: skip

    @web.get("/api/photo")
    async def photo(photo: str) -> dict[str, str]:
        return {"photo": await compute(explorer.photo, photo)}

    @web.get("/api/channels")
    async def channels(photo: str, layer: str, page: int = 0) -> dict[str, Any]:
        return await compute(explorer.channels, photo, layer, max(page, 0))

    @web.get("/api/reverse")
    async def reverse(photo: str, layer: str, select: str = "max", variants: str = ",".join(VARIANTS),
                      render: str = "paper", click: int | None = None) -> dict[str, Any]:  # fmt: skip
        if render not in RENDERERS:
            raise Refused(400, f"unknown renderer {render!r}; choose from {', '.join(RENDERERS)}")
        if click is not None:  # the page numbers its clicks: an older one still waiting is dropped
            explorer.latest = max(explorer.latest, click)
        return await compute(explorer.reverse, photo, layer, select, variants.split(","), render, click=click)

    @web.post("/api/upload")
    async def upload(request: Request, name: str = "upload") -> dict[str, str]:
        writer(request)
        if int(request.headers.get("content-length") or 0) > UPLOAD_BYTES:
            raise Refused(413, f"the upload is larger than {UPLOAD_BYTES:,} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > UPLOAD_BYTES:
                raise Refused(413, f"the upload is larger than {UPLOAD_BYTES:,} bytes")
        return {"id": await compute(explorer.upload, bytes(data), name)}

    @web.post("/api/save")
    async def save(request: Request, photo: str, layer: str, select: str = "max", variants: str = ",".join(VARIANTS),
                   render: str = "paper") -> dict[str, list[str]]:  # fmt: skip
        writer(request)
        return {"files": await compute(explorer.save, photo, layer, select, variants.split(","), render, out)}

    return web


@contextmanager
def served(web: FastAPI) -> Iterator[str]:
    """`web` served by uvicorn on a free loopback port in a thread, for tests and benchmarks:
    its base URL, the server stopped on leaving."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
