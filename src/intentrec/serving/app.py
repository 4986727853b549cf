"""The HTTP API: a FastAPI app over a :class:`~intentrec.serving.service.Service`.

    POST /recommend               a known user, or a history brought in the request -> top-k items
    GET  /items/{item}/similar    the items the model ranks first after an item
    GET  /health                  liveness, sizes and index kind (never needs the token)
    GET  /metadata                the run's config, dataset card, index, heads and limits
    GET  /docs, /openapi.json     the interactive documentation (served offline) and its schema

Every user mistake is a 4xx with a ``detail`` saying what was wrong: 401 without the bearer token (when
one is set), 404 for an unknown user or item, 413 for a body over the limit, 422 for a request the schema or
the data does not allow (pydantic's field errors, or one sentence). A 5xx is a bug.

The two ranking routes run the model on requests in batches (:mod:`~intentrec.serving.batching`) and
search the index on a thread per core; the others are plain functions run in FastAPI's thread pool.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated

import faiss
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic_core import to_json
from starlette.datastructures import Headers
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

import intentrec
from intentrec.catalogue import UnknownIdError
from intentrec.errors import IntentRecError
from intentrec.serving.batching import Batcher
from intentrec.serving.schemas import (
    MAX_K,
    Category,
    Health,
    Metadata,
    RecommendRequest,
    RecommendResponse,
    SimilarResponse,
)
from intentrec.serving.service import Resolved, Service

_ERRORS = {
    401: {"description": "Missing or wrong bearer token."},
    404: {"description": "Unknown user or item."},
    413: {"description": "Request body over the server's limit."},
    422: {"description": "A request the schema or the data does not allow."},
}


def create_app(service: Service, token: str | None = None) -> FastAPI:
    """The app serving ``service``; with ``token``, every route but /health and the docs requires it."""
    batcher = Batcher(lambda requests: list(service.vectors(requests)))
    exact = Batcher(service.rank)  # requests that score the whole catalogue (see answer)
    # faiss' OpenMP thread count is per thread: left at its default, every one-query search of a new
    # thread starts a team of one thread per core whose idle members spin (2 ms of CPU per request here)
    cores = max(1, (os.cpu_count() or 1) // service.config.workers)  # the workers share the cores
    # with one core to a process, a search thread adds two thread wake-ups per request and no parallelism
    searchers = (
        ThreadPoolExecutor(
            cores, thread_name_prefix="intentrec-search", initializer=faiss.omp_set_num_threads, initargs=(1,)
        )
        if cores > 1
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if searchers is None:  # searches run on this thread: one OpenMP thread, as for the searchers'
            faiss.omp_set_num_threads(1)
        yield
        batcher.close()
        exact.close()
        if searchers is not None:
            searchers.shutdown()

    app = FastAPI(
        title="IntentRec",
        version=intentrec.__version__,
        summary="Recommendations from a trained IntentRec run, in the data's own IDs.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI and ReDoc from a CDN: blank on a server offline
        redoc_url=None,
    )
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
    app.add_middleware(_BodyLimit, max_bytes=service.config.max_body_bytes)
    protected = [Depends(_bearer_token(token))] if token else []

    @app.exception_handler(IntentRecError)
    def user_mistake(request: Request, error: IntentRecError) -> JSONResponse:
        status = 404 if isinstance(error, UnknownIdError) else 422
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, error: RequestValidationError) -> Response:
        # FastAPI's own 422, but a long input (a history of thousands of events) is not sent back whole,
        # and a NaN or Infinity a client sent (Python's json reads them) is sent back as a string: the
        # json module refuses to write it, which made such a request a 500
        problems = [
            {**problem, "input": _shortened(problem["input"])} if "input" in problem else problem
            for problem in error.errors()
        ]
        body = to_json({"detail": jsonable_encoder(problems)}, inf_nan_mode="strings")
        return Response(body, status_code=422, media_type="application/json")

    # The hot path, in three stages that overlap across requests: parsing and writing on the event loop,
    # the model on the batcher's thread (requests that queue up share a forward pass; a known user's
    # state was computed at start, unless the model reads the time of the request), the index on one
    # thread per core (faiss releases the GIL), or on the event loop when the process has one core.
    # A request that needs every item's score skips the index:
    # its state and its scoring of the catalogue are batched, on a batcher of their own. The body is
    # written by pydantic's serialiser without building the response models (4x faster than the json
    # module for 100 items); the tests check it against the response schema.
    async def answer(resolved: Resolved) -> Response:
        if resolved.exact:
            items, scores, heads = await exact.submit(resolved)
        else:
            vector = service.cached_vector(resolved)
            if vector is None:
                vector = await batcher.submit(resolved)
            if searchers is None:
                items, scores, heads = service.search(resolved, vector)
            else:
                loop = asyncio.get_running_loop()
                items, scores, heads = await loop.run_in_executor(searchers, service.search, resolved, vector)
        body = service.respond(resolved, items, scores, heads)
        return Response(to_json(body), media_type="application/json")

    @app.post("/recommend", response_model=RecommendResponse, dependencies=protected, responses=_ERRORS)
    async def recommend(request: RecommendRequest) -> Response:
        """Top-k items for a known user or for a history brought in the request, best first."""
        return await answer(service.prepare(request))

    @app.get(
        "/items/{item:path}/similar",
        response_model=SimilarResponse,
        dependencies=protected,
        responses=_ERRORS,
    )
    async def similar(
        item: str,
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many items to return.")] = 10,
        include_categories: Annotated[list[Category] | None, Query()] = None,
        exclude_categories: Annotated[list[Category] | None, Query()] = None,
    ) -> Response:
        """The items the model ranks first after this one: the ranking for a history of this item alone."""
        return await answer(service.prepare_similar(item, k, include_categories, exclude_categories))

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """Swagger UI from the installed swagger-ui-bundle package, so the page works without internet."""
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title="IntentRec API",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
        )

    @app.get("/health")
    def health() -> Health:
        return service.health()

    @app.get("/metadata", dependencies=protected, responses={401: _ERRORS[401]})
    def metadata() -> Metadata:
        """The run's config, dataset card, vector index, heads and request limits."""
        return service.metadata()

    return app


class _BodyLimit:
    """Refuse a request body over ``max_bytes`` with a 413 that names the limit, before reading it all.

    A declared Content-Length is checked before the body is read; a body sent without one is counted as
    it arrives. (Starlette's own limit answers a bare "Content Too Large" in plain text.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = HTTPException(
            413, f"the request body is larger than this server accepts ({self.max_bytes:,} bytes)."
        )
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": too_large.detail}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise too_large  # FastAPI passes an HTTPException raised while reading the body on
            return message

        await self.app(scope, counted, send)


def _shortened(value: object, limit: int = 200) -> object:
    """``value`` as it is, or the start of its text when that is longer than ``limit`` characters."""
    text = repr(value)
    return value if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _bearer_token(token: str) -> Callable[[HTTPAuthorizationCredentials | None], None]:
    """A dependency that refuses requests without ``Authorization: Bearer <token>``."""
    scheme = HTTPBearer(auto_error=False, description="The token given to `intentrec serve --token`.")
    expected = token.encode()

    # Depends as a default, not in Annotated: the annotation is a string (PEP 563) that FastAPI resolves
    # in the module's globals, where the local `scheme` does not exist
    def check(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> None:
        # compare_digest: the time taken does not tell how much of a guess was right
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise HTTPException(
                401,
                "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
