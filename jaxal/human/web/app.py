"""The labeling page's HTTP routes (Starlette). Every request carries the access token (`?token=`
or the `X-Jaxal-Token` header) or gets 403. Pictures are addressed by round and slot of the open
question, never by a path; answers are POSTs checked against the open question (`Refused` -> 4xx
with its message, nothing written). The page itself is static HTML/CSS/JS from this package.

  GET  /                          the page           GET /static/<app.js|app.css>
  GET  /api/state                 what the page shows (JSON)
  GET  /api/image/<round>/<slot>  the image (the original file where there is one)
  GET  /api/cluster/<round>/<slot> a cluster's montage
  POST /api/answer {round, kind, slot, answer}     POST /api/undo {round}
  POST /api/finish {round}        tell the answers, train the next round in the background
  GET  /api/export/labels.csv     every label so far (path,label)
  POST /api/export/model          the trained network as a folder (`jaxal.load_model`)
  POST /api/stop                  stop the server (answers are saved)
"""
from __future__ import annotations

import hmac
import importlib.resources
import re
from typing import Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from jaxal.errors import ArgumentError
from jaxal.human.web.service import LabelingService, Refused

STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
          "index.html": "text/html; charset=utf-8"}
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                      "style-src 'self'; script-src 'self'"}


def _static(name: str) -> bytes:
  return importlib.resources.files("jaxal.human.web").joinpath("static", name).read_bytes()


TOKEN_PATTERN = r"[A-Za-z0-9_-]{8,128}"


class _TokenGate:
  """ASGI middleware: 403 for any HTTP request without the token."""

  def __init__(self, app, token: str):
    self.app, self.token = app, token

  async def __call__(self, scope, receive, send):
    if scope["type"] == "http":
      request = Request(scope)
      given = request.query_params.get("token") or request.headers.get("x-jaxal-token") or ""
      if not hmac.compare_digest(given.encode(), self.token.encode()):
        response = Response("403: this page needs the token printed with its address "
                            "(…/?token=…).\n", status_code=403, media_type="text/plain",
                            headers=HEADERS)
        await response(scope, receive, send)
        return
    await self.app(scope, receive, send)


def make_app(service: LabelingService, token: str, *,
             picture: Callable[[int, str, int], tuple[bytes, str]],
             labels_csv: Callable[[], str], export_model: Callable[[], dict],
             stop: Callable[[], None]) -> Starlette:
  """The Starlette app. `picture(round, kind, slot)` -> (bytes, media type) of an open item;
  `labels_csv()` the labels export; `export_model()` writes the model and returns where and how
  to load it; `stop()` ends the server."""

  def refused(e: Refused) -> JSONResponse:
    return JSONResponse({"error": str(e)}, status_code=e.status, headers=HEADERS)

  def page(request: Request) -> Response:
    html = _static("index.html").replace(b"__TOKEN__", token.encode())   # token: [A-Za-z0-9_-]
    return Response(html, media_type=STATIC["index.html"], headers=HEADERS)

  def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC or name == "index.html":
      return Response("404\n", status_code=404, media_type="text/plain", headers=HEADERS)
    return Response(_static(name), media_type=STATIC[name], headers=HEADERS)

  def state(request: Request) -> Response:
    return JSONResponse(service.snapshot(), headers=HEADERS)

  def pictures(kind: str):
    def route(request: Request) -> Response:
      try:
        data, media = picture(request.path_params["round"], kind, request.path_params["slot"])
      except Refused as e:
        return refused(e)
      return Response(data, media_type=media, headers=HEADERS)
    return route

  async def body(request: Request) -> dict:
    try:
      data = await request.json()
    except ValueError as e:
      raise Refused("the request body must be JSON.") from e
    if not isinstance(data, dict):
      raise Refused("the request body must be a JSON object.")
    return data

  def posting(action: Callable[[dict], dict]):
    async def route(request: Request) -> Response:
      try:
        data = await body(request)
        from starlette.concurrency import run_in_threadpool  # pylint: disable=import-outside-toplevel
        return JSONResponse(await run_in_threadpool(action, data), headers=HEADERS)
      except Refused as e:
        return refused(e)
    return route

  def export_labels(request: Request) -> Response:
    return Response(labels_csv(), media_type="text/csv; charset=utf-8", headers={
        **HEADERS, "Content-Disposition": 'attachment; filename="labels.csv"'})

  def stop_route(data: dict) -> dict:
    stop()
    return {"stopped": True}

  routes = [
      Route("/", page),
      Route("/static/{name}", static),
      Route("/api/state", state),
      Route("/api/image/{round:int}/{slot:int}", pictures("image")),
      Route("/api/cluster/{round:int}/{slot:int}", pictures("cluster")),
      Route("/api/answer", posting(lambda d: service.answer(d.get("round"), d.get("kind", "image"),
                                                            d.get("slot"), d.get("answer"))),
            methods=["POST"]),
      Route("/api/undo", posting(lambda d: service.undo(d.get("round"))), methods=["POST"]),
      Route("/api/finish", posting(lambda d: service.finish(d.get("round"))), methods=["POST"]),
      Route("/api/export/labels.csv", export_labels),
      Route("/api/export/model", posting(lambda d: export_model()), methods=["POST"]),
      Route("/api/stop", posting(stop_route), methods=["POST"]),
  ]
  return Starlette(routes=routes, middleware=[Middleware(_TokenGate, token=token)])
