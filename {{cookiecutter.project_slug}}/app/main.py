"""The application factory: `uvicorn --factory app.main:create_app` builds the app at start-up,
so importing this module (in tests, in tools) reads no settings and opens nothing."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

{% if cookiecutter.include_sentry == "yes" -%}
# Sentry seam: switched on and off with the app; its middleware wraps every request.
from app import __version__, sentry
{% else -%}
from app import __version__
{% endif -%}
from app.api.body_limit import BodySizeLimitMiddleware
from app.api.errors import install_exception_handlers
from app.api.router import API_PREFIX, api_router
from app.api.routes import error_route, health
from app.core.config import Settings, get_settings
from app.core.logging import configure_logging
from app.db.session import create_engine, create_sessions
from app.db.tenancy import warn_unless_isolation_enforced

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: on before the first request, from SENTRY_* (fail-open: one log line when off).
    sentry.init_sentry(settings)
{%- endif %}
    engine = create_engine(settings)
    app.state.engine = engine
    app.state.sessions = create_sessions(engine)
    if settings.uses_placeholder_secret:
        logger.warning("SECRET_KEY is the development placeholder; set it before deploying")
    if not settings.is_sqlite:
        await warn_unless_isolation_enforced(engine)
    logger.info("started %s %s (%s)", settings.project_name, __version__, settings.environment)
    # What start-up allocated (modules, settings, the engine) lives as long as the process:
    # frozen, it is left out of every garbage collection, which otherwise walked all of it
    # and stalled requests by tens of milliseconds (measured by the template's benchmark).
    gc.freeze()
    try:
        yield
    finally:
        await engine.dispose()
{%- if cookiecutter.include_sentry == "yes" %}
        # Sentry seam: send what is queued, waiting at most SENTRY_SHUTDOWN_TIMEOUT seconds.
        await sentry.shutdown()
{%- endif %}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title=settings.project_name,
        version=__version__,
        lifespan=lifespan,
        # No 307 to the slash-less path: its Location would be built from the Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: outermost, so that it reports every error any layer inside it raises.
    app.add_middleware(sentry.SentryRequestContext)
{%- endif %}
    install_exception_handlers(app)
    app.include_router(health.router)
    app.include_router(api_router)
    if settings.error_route:
        app.include_router(error_route.router, prefix=API_PREFIX)
    return app
