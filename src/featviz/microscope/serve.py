"""``featviz microscope serve DIR``: the Microscope's site over HTTP (Starlette on uvicorn),
plus what a static host cannot do -- a unit that the build skipped is rendered when someone
opens its page.

Renders go through one worker thread fed by a bounded queue: a unit is rendered once however
many pages ask for it at the same time, its files and catalog row are written as a build
writes them (so a restart does not render it again). When the queue is full, a unit waits in
line for a place, for as long as its page keeps asking about it (a page closed, its unit leaves
the line), so work does not pile up and no request fails: the page says where it stands and
asks again by itself. The API reports a render's real progress (the
step reached of all its images' steps). Stopping the server (Ctrl-C) stops the worker between
two steps and waits for it: the unit it was rendering is abandoned, nothing of it written, so
no torch code still runs while the interpreter shuts down. Only files inside DIR are served
(no ``..``, encoded slashes, absolute paths or symlinks out), only of the kinds the site is
made of, and only units of the built model's layers can be asked for.
"""

from __future__ import annotations

import atexit
import html
import re
import socket
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from featviz.errors import FeatvizError
from featviz.microscope.catalog import Catalog, require
from featviz.microscope.site import page

LOOPBACK = ("127.0.0.1", "localhost", "::1")
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".gif": "image/gif",
    ".mp4": "video/mp4",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
UNIT_PAGE = re.compile(r"^units/([^/]+)/(\d+)\.html$")


class QueueFull(FeatvizError):
    """The server takes no unit now (it is stopping, or its waiting line is full too)."""


STALE = 30.0  # seconds after which a waiting unit nobody asks about any more leaves the line
LINE = 1000  # units that may wait for a place in the queue


class Stopped(Exception):
    """The server is stopping: the render in progress is abandoned between two steps."""


def describe(out: str | Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The build's settings (model, recipe, ``warning`` of an untrained model...) of the
    Microscope folder ``out`` and its layers' channel counts; one clear error when the folder
    holds no catalog, or one that cannot be read or names no build."""
    path = require(out)
    try:
        catalog = Catalog(path, readonly=True)
        try:
            meta, layers = catalog.meta(), catalog.layers()
        finally:
            catalog.close()
    except sqlite3.Error as err:
        raise FeatvizError(f"cannot read {path} ({err}): expected the catalog of a Microscope build") from None
    if "model" not in meta or not layers:
        raise FeatvizError(
            f"{path} names no model or layers: build it first (featviz microscope build MODEL --out {out})"
        )
    return meta, {layer["name"]: layer["channels"] for layer in layers}


class Renderer:
    """Renders skipped units of a Microscope folder, one at a time, each at most once."""

    def __init__(self, out: str | Path, limit: int = 16, device: str = "auto") -> None:
        if limit < 1:
            raise FeatvizError(f"expected a queue of at least 1 unit, got {limit}")
        self.out, self.limit, self.device = Path(out), limit, device
        meta, self.channels = describe(self.out)
        self.model, self.warning = meta["model"], meta.get("warning")
        self.load = meta.get("load")  # the build's weights file and labels, to render with the same model
        self.renders = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._jobs: dict[tuple[str, int], dict[str, Any]] = {}
        self._waiting: list[tuple[str, int]] = []
        self._line: dict[tuple[str, int], float] = {}  # beyond the queue: unit -> when last asked about
        self._adapter: Any = None
        self._thread = threading.Thread(target=self._work, name="featviz-render", daemon=True)
        self._thread.start()
        # A daemon thread still in torch code while the interpreter tears down aborts the process.
        atexit.register(self.close)

    def close(self) -> None:
        """Stop the worker and wait for it: the render in progress is abandoned after its
        current step (nothing of it is written), the queued units are dropped. Idempotent."""
        with self._lock:
            self._stop.set()
            self._waiting.clear()
            self._line.clear()
            self._wake.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()
        atexit.unregister(self.close)

    def is_unit(self, layer: str, channel: int) -> bool:
        return layer in self.channels and 0 <= channel < self.channels[layer]

    def built(self, layer: str, channel: int) -> bool:
        return (self.out / "units" / layer / f"{channel}.html").is_file()

    def ask(self, layer: str, channel: int) -> dict[str, Any]:
        """Queue the unit unless it is built, queued or rendering; its state. When the queue is
        full the unit waits in line for a place (``"waiting"``), as long as someone keeps asking
        about it (:data:`STALE`)."""
        key = (layer, channel)
        with self._lock:
            if key not in self._jobs and key not in self._line and not self.built(layer, channel):
                if self._stop.is_set():
                    raise QueueFull("the server is stopping: try again when it is back")
                if len(self._line) >= LINE:
                    raise QueueFull(f"{LINE} units are waiting for a render: try again in a minute")
                self._line[key] = time.monotonic()
                self._admit()
        return self.state(layer, channel)

    def _admit(self) -> None:
        """Move units from the line into the queue while it has room (the lock is held); units
        nobody asked about for :data:`STALE` seconds leave the line."""
        now = time.monotonic()
        for key, seen in list(self._line.items()):
            if len(self._waiting) >= self.limit:
                break
            del self._line[key]
            if now - seen <= STALE and not self.built(*key):
                self._jobs[key] = {"status": "queued"}
                self._waiting.append(key)
                self._wake.notify()

    def state(self, layer: str, channel: int) -> dict[str, Any]:
        key = (layer, channel)
        with self._lock:
            if key in self._line:
                self._line[key] = time.monotonic()  # someone still waits for it
                ahead = list(self._line).index(key) + len(self._waiting) + (1 if self._busy() else 0)
                return {"status": "waiting", "ahead": ahead, "limit": self.limit}
            job = dict(self._jobs.get(key) or {"status": "done" if self.built(layer, channel) else "not built"})
            if job["status"] == "queued":
                job["ahead"] = self._waiting.index(key) + (1 if self._busy() else 0)
            if job["status"] == "rendering" and job.get("steps"):
                job["progress"] = job["step"] / job["steps"]
        return job

    def _busy(self) -> bool:
        return any(j["status"] == "rendering" for j in self._jobs.values())

    def stats(self) -> dict[str, Any]:
        with self._lock:
            queued, line = len(self._waiting), len(self._line)
            return {
                "model": self.model,
                "renders": self.renders,
                "queued": queued,
                "waiting": line,
                "limit": self.limit,
            }

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stop.is_set():
                    self._wake.wait()
                if self._stop.is_set():
                    return
                key = self._waiting.pop(0)
                self._admit()
                self._jobs[key] = {"status": "rendering", "step": 0}  # "steps" once the render knows them
            job: dict[str, Any] | None
            try:
                self._render(*key)
                job = {"status": "done"}
            except Stopped:
                job = None  # abandoned: not built, and asked again after a restart
            except Exception as err:  # a failed render is shown on the unit's page
                job = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            with self._lock:
                if job is None:
                    self._jobs.pop(key, None)
                    continue
                self._jobs[key] = job
                if job["status"] == "done":
                    self.renders += 1

    def _step(self, key: tuple[str, int]) -> Callable[[int, int], None]:
        """The render's step callback: records the step reached, and abandons the render
        (between two steps) once the server is stopping."""

        def step(done: int, total: int) -> None:
            if self._stop.is_set():
                raise Stopped
            with self._lock:
                self._jobs[key].update(step=done, steps=total)

        return step

    def _render(self, layer: str, channel: int) -> None:
        from featviz.microscope.build import render_units
        from featviz.microscope.site import write_site
        from featviz.models import load_again, place

        if self._adapter is None:
            self._adapter = load_again(self.model, self.load)
            place(self._adapter, self.model, self.device)
        if self._stop.is_set():
            raise Stopped
        render_units(self._adapter, self.out, layer, [channel], on_step=self._step((layer, channel)))
        write_site(self.out)


def create_app(out: str | Path, renderer: Renderer | None = None) -> Any:
    """The ASGI application serving the folder ``out``."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    root = Path(out).resolve()
    work = renderer or Renderer(root)

    def unit(request: Request) -> tuple[str, int] | None:
        layer, channel = request.path_params["layer"], request.path_params["channel"]
        return (layer, channel) if work.is_unit(layer, channel) else None

    async def status(request: Request) -> Response:
        return JSONResponse(work.stats())

    async def unit_status(request: Request) -> Response:
        key = unit(request)
        if key is None:
            return JSONResponse({"error": "no such unit in this Microscope"}, status_code=404)
        return JSONResponse(work.ask(*key) if request.method == "POST" else work.state(*key))

    async def files(request: Request) -> Response:
        raw = request.scope.get("raw_path", b"").decode("latin-1").lower()
        path = request.path_params["path"] or "index.html"
        parts = path.split("/")
        if "%2f" in raw or "%5c" in raw or "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
            return PlainTextResponse("not found", status_code=404)
        target = (root / path).resolve()
        if not target.is_relative_to(root):  # a symlink out of the folder
            return PlainTextResponse("forbidden", status_code=403)
        if target.is_file() and target.suffix in TYPES:
            return FileResponse(target, media_type=TYPES[target.suffix], headers={"Cache-Control": "no-cache"})
        match = UNIT_PAGE.match(path)
        if match and work.is_unit(match[1], int(match[2])):
            return _pending(match[1], int(match[2]))
        return PlainTextResponse("not found", status_code=404)

    def _pending(layer: str, channel: int) -> Response:
        try:
            state = work.ask(layer, channel)
        except QueueFull as err:
            return PlainTextResponse(str(err), status_code=503, headers={"Retry-After": "60"})
        if state["status"] == "done":  # finished between the file check and now
            return FileResponse(root / "units" / layer / f"{channel}.html", media_type=TYPES[".html"])
        body = (
            f"<p>{html.escape(layer)}:{channel} was not built; it is being rendered now with the build's settings.</p>"
            "<div class='progress'><div></div></div><p id='status'>queued</p>"
        )
        api = f"/api/units/{layer}/{channel}"
        title = f"{work.model} {layer}:{channel}"
        attrs = f" data-api='{html.escape(api)}'"
        text = page(title, body, "../../", scripts=("pending.js",), attrs=attrs, warning=work.warning)
        return HTMLResponse(text, status_code=202, headers={"Cache-Control": "no-store"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # uvicorn is shutting down (Ctrl-C): stop the worker before the interpreter goes.
        await run_in_threadpool(work.close)

    routes = [
        Route("/api/status", status),
        Route("/api/units/{layer}/{channel:int}", unit_status, methods=["GET", "POST"]),
        Route("/{path:path}", files),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.renderer = work
    return app


def check_port(host: str, port: int) -> None:
    """Refuse a port already in use with one clear line, before uvicorn starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as err:
            raise FeatvizError(f"cannot listen on {host}:{port} ({err.strerror}): choose another --port") from None


def address(host: str, port: int) -> str:
    """The server's URL (an IPv6 host in brackets)."""
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(
    out: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    queue: int = 16,
    device: str = "auto",
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the Microscope folder ``out`` until interrupted. What can fail before serving
    (the web extra, the folder and its catalog, the port, the queue) is checked first; then
    ``ready`` is called with the server's URL. Ctrl-C stops the server, then its render
    worker (see :meth:`Renderer.close`); uvicorn returns or raises KeyboardInterrupt."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError:
        raise FeatvizError('the server needs Starlette and uvicorn: pip install "featviz[web]"') from None

    out = Path(out)
    describe(out)
    check_port(host, port)
    renderer = Renderer(out, limit=queue, device=device)
    try:
        if not (out / "index.html").is_file():
            from featviz.microscope.site import write_site

            write_site(out)
        app = create_app(out, renderer)
        if ready is not None:
            ready(address(host, port))
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        renderer.close()
