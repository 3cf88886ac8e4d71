"""The web surface: merged stories as HTML, the merged feeds over HTTP, feed health, metrics.

::

    /                 front page: stories ranked fresh and widely reported first
                      (``aggregator.stories``), ?q= search, ?tag= ?min_sources= filters
                      (min_sources counts outlets), ?page= pages of ?limit= stories
    /stories/{id}     one story, every source and why it joined
    /feed.atom .rss .json   merged feeds, same filters, ETag/Last-Modified with 304s
                      (also at /merged.atom .rss .json, the names their self links use)
    /feeds            each configured feed's health
    /healthz          200 {"status": "ok", ...}; 503 when the database is unreachable, or
                      {"status": "degraded", "problems": [...]} when storing or publishing
                      failed repeatedly or a parse ran past its bound (``ServiceHealth``)
    /metrics          Prometheus text format

Storage calls are synchronous, so each runs in Starlette's thread pool and the event loop
(shared with the polling service) never waits on the database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator.config import Settings
from aggregator.exceptions import StorageError
from aggregator.health import ServiceHealth
from aggregator.publish import (
    ATOM_FILENAME,
    DEFAULT_TITLE,
    JSON_FILENAME,
    RSS_FILENAME,
    FeedMeta,
    render_atom,
    render_json_feed,
    render_rss,
)
from aggregator.storage.base import Storage
from aggregator.types import FeedState, Story
from aggregator.web import pages, views
from aggregator.web.conditional import http_date, is_not_modified, strong_etag
from aggregator.web.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from aggregator.web.metrics import Metrics
from aggregator.web.params import (
    MAX_LIMIT,
    PAGE_SIZE,
    BadQuery,
    Filters,
    FrontPage,
    parse_filters,
    parse_front_page,
)

Renderer = Callable[[Sequence[Story], FeedMeta], bytes]
FeedsProvider = Callable[[], Sequence[FeedState]]
Clock = Callable[[], datetime]

# Format name -> (renderer, media type). JSON Feed 1.1 registers application/feed+json.
FEED_FORMATS: dict[str, tuple[Renderer, str]] = {
    "atom": (render_atom, "application/atom+xml; charset=utf-8"),
    "rss": (render_rss, "application/rss+xml; charset=utf-8"),
    "json": (render_json_feed, "application/feed+json; charset=utf-8"),
}
FEED_FILENAMES = {"atom": ATOM_FILENAME, "rss": RSS_FILENAME, "json": JSON_FILENAME}
# Feed readers must revalidate every time; a 304 costs one query and a hash.
FEED_CACHE_CONTROL = "no-cache"
# The "at least N outlets" choices the front page offers (any value works in the URL).
MIN_OUTLET_CHOICES = (1, 2, 3, 5, 10)
_PLAIN_ERROR_PREFIXES = ("/feed.", "/merged.", "/healthz", "/metrics")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Web:
    """The handlers, sharing the storage, settings, metrics and clock."""

    def __init__(
        self,
        storage: Storage,
        settings: Settings,
        metrics: Metrics,
        feeds_provider: FeedsProvider,
        clock: Clock,
        title: str,
        public_url: str,
        health: ServiceHealth | None,
    ) -> None:
        self.storage = storage
        self.health = health
        self.public_url = public_url
        self.settings = settings
        self.metrics = metrics
        self.feeds_provider = feeds_provider
        self.clock = clock
        self.title = title

    def _context(self, request: Request, **extra: Any) -> dict[str, Any]:
        home = str(request.scope.get("root_path", "")).rstrip("/") + "/"
        return {"site_title": self.title, "home": home, "now": self.clock(), **extra}

    def _filters(self, request: Request) -> Filters:
        try:
            return parse_filters(request.query_params, default_limit=self.settings.max_stories)
        except BadQuery as exc:
            raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from exc

    async def _stories(self, filters: Filters) -> list[Story]:
        return await run_in_threadpool(
            self.storage.recent_stories,
            filters.limit,
            min_sources=filters.min_sources,
            tag=filters.tag,
        )

    async def index(self, request: Request) -> Response:
        try:
            front = parse_front_page(request.query_params)
        except BadQuery as exc:
            raise HTTPException(HTTPStatus.BAD_REQUEST, str(exc)) from exc
        context = self._context(request)
        # Storage and rendering both run in the thread pool: a page of large stories takes
        # milliseconds of CPU that would otherwise stall every other request and the poller.
        html = await run_in_threadpool(self._index_html, front, context)
        return HTMLResponse(html)

    def _index_html(self, front: FrontPage, context: dict[str, Any]) -> str:
        filters = front.filters
        found = self.storage.front_page(
            filters.limit + 1,
            offset=front.offset,
            min_sources=filters.min_sources,
            tag=filters.tag,
            query=front.search,
        )
        total = self.storage.count_stories(
            min_sources=filters.min_sources, tag=filters.tag, query=front.search
        )
        tags = sorted({tag for feed in self.feeds_provider() for tag in feed.tags})
        now = context["now"]
        cards = [views.story_card(story, now) for story in found[: filters.limit]]
        older = front.link(page=front.page + 1, default_limit=PAGE_SIZE)
        newer = front.link(page=front.page - 1, default_limit=PAGE_SIZE)
        return pages.render(
            "index.html",
            **context,
            front=front,
            filters=filters,
            cards=cards,
            total=total,
            tags=tags,
            outlet_choices=MIN_OUTLET_CHOICES,
            older=older if len(found) > filters.limit else None,
            newer=newer if front.page > 1 else None,
        )

    async def story(self, request: Request) -> Response:
        story_id = str(request.path_params["story_id"])
        context = self._context(request)
        html = await run_in_threadpool(self._story_html, story_id, context)
        return HTMLResponse(html)

    def _story_html(self, story_id: str, context: dict[str, Any]) -> str:
        story = self.storage.get_story(story_id)
        if story is None:
            raise HTTPException(HTTPStatus.NOT_FOUND, f"There is no story with id {story_id!r}.")
        now = context["now"]
        card = views.story_card(story, now)
        return pages.render(
            "story.html",
            **context,
            story=story,
            card=card,
            sources=views.source_views(story),
            updated=views.last_joined(story),
        )

    def feed_endpoint(self, fmt: str) -> Callable[[Request], Awaitable[Response]]:
        """The handler serving the merged feed in ``fmt`` (a key of ``FEED_FORMATS``)."""
        renderer, media_type = FEED_FORMATS[fmt]

        async def endpoint(request: Request) -> Response:
            return await self.feed(request, renderer, media_type)

        return endpoint

    async def feed(self, request: Request, renderer: Renderer, media_type: str) -> Response:
        filters = self._filters(request)
        stories = await self._stories(filters)
        # The configured address, never the request's Host header: behind a caching proxy a
        # forged Host would otherwise rewrite the self and home links every reader gets.
        # A filtered feed has its own title, id and self link (with its query string).
        default_limit = min(self.settings.max_stories, MAX_LIMIT)
        meta = FeedMeta(self.public_url, title=self.title).filtered(
            tag=filters.tag,
            min_sources=filters.min_sources,
            query=filters.query(default_limit=default_limit),
        )
        # Rendered in the thread pool like the pages: a few hundred stories take tens of ms.
        body = await run_in_threadpool(renderer, stories, meta)
        etag = strong_etag(body)
        modified = max((s.updated for s in stories), default=None)
        headers = {"ETag": etag, "Cache-Control": FEED_CACHE_CONTROL}
        if modified is not None:
            headers["Last-Modified"] = http_date(modified)
        if is_not_modified(request.headers, etag, modified):
            return Response(status_code=HTTPStatus.NOT_MODIFIED, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    async def feeds(self, request: Request) -> Response:
        context = self._context(request)
        return HTMLResponse(await run_in_threadpool(self._feeds_html, context))

    def _feeds_html(self, context: dict[str, Any]) -> str:
        views = pages.feed_views(self.feeds_provider())
        return pages.render("feeds.html", **context, views=views)

    async def healthz(self, request: Request) -> Response:
        try:
            version = await run_in_threadpool(self.storage.schema_version)
        except StorageError as exc:
            return JSONResponse(
                {"status": "error", "db": f"unavailable: {exc}"},
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
            )
        problems = self.health.problems() if self.health is not None else []
        if problems:
            return JSONResponse(
                {
                    "status": "degraded",
                    "db": "ok",
                    "schema_version": version,
                    "problems": problems,
                },
                status_code=HTTPStatus.SERVICE_UNAVAILABLE,
            )
        return JSONResponse({"status": "ok", "db": "ok", "schema_version": version})

    def _inventory(self) -> None:
        feeds = len(self.feeds_provider())
        stories = self.storage.count_stories()
        self.metrics.set_inventory(feeds=feeds, stories=stories)

    async def metrics_page(self, request: Request) -> Response:
        # Without the database the counters are still worth scraping; gauges keep their values.
        with contextlib.suppress(StorageError):
            await run_in_threadpool(self._inventory)
        return Response(self.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return self._error(request, exc.status_code, exc.detail, exc.headers)

    async def storage_error(self, request: Request, exc: Exception) -> Response:
        message = f"The database is unavailable: {exc}"
        return self._error(request, HTTPStatus.SERVICE_UNAVAILABLE, message, None)

    def _error(
        self, request: Request, status: int, message: str, headers: Mapping[str, str] | None
    ) -> Response:
        if request.url.path.startswith(_PLAIN_ERROR_PREFIXES):
            return PlainTextResponse(f"{message}\n", status_code=status, headers=headers)
        reason = HTTPStatus(status).phrase
        context = self._context(request, status=status, reason=reason, message=message)
        return HTMLResponse(pages.render("error.html", **context), status, headers=headers)


def create_app(
    storage: Storage,
    *,
    settings: Settings,
    metrics: Metrics | None = None,
    feeds_provider: FeedsProvider | None = None,
    clock: Clock = _utcnow,
    title: str = DEFAULT_TITLE,
    public_url: str | None = None,
    health: ServiceHealth | None = None,
) -> Starlette:
    """The web application over ``storage``.

    ``public_url`` is the address the published feeds link to (their self, home and story
    page links); by default ``settings.site_url``. The request's ``Host`` is never used.

    ``feeds_provider`` lists the feeds the ``/feeds`` page shows (default: the active feeds in
    storage). ``metrics`` is the object the service feeds with ``observe_poll``; a fresh one is
    made when none is given. ``clock`` decides what counts as new. ``health`` is the service's
    ``ServiceHealth``, which ``/healthz`` reports.
    """
    web = _Web(
        storage,
        settings,
        metrics or Metrics(),
        feeds_provider or storage.list_feeds,
        clock,
        title,
        public_url or settings.site_url,
        health,
    )
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: web.http_error,
        StorageError: web.storage_error,
    }
    app = Starlette(
        routes=[
            Route("/", web.index, methods=["GET"], name="index"),
            Route("/stories/{story_id}", web.story, methods=["GET"], name="story"),
            *(
                Route(f"/feed.{fmt}", web.feed_endpoint(fmt), methods=["GET"], name=f"feed_{fmt}")
                for fmt in FEED_FORMATS
            ),
            # The renderers' self links name the published files (merged.atom...); serve the
            # same documents there so a feed's self link always resolves.
            *(
                Route(f"/{filename}", web.feed_endpoint(fmt), methods=["GET"])
                for fmt, filename in FEED_FILENAMES.items()
            ),
            Route("/feeds", web.feeds, methods=["GET"], name="feeds"),
            Route("/healthz", web.healthz, methods=["GET"], name="healthz"),
            Route("/metrics", web.metrics_page, methods=["GET"], name="metrics"),
        ],
        exception_handlers=handlers,
    )
    app.state.metrics = web.metrics
    return app
