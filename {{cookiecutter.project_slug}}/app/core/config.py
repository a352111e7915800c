"""Settings read from the environment (and a `.env` file), validated once at start-up."""

import json
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app import PROJECT_NAME

# The one value of SECRET_KEY we ship; it is fine on a laptop and refused anywhere else.
PLACEHOLDER_SECRET = "changethis-local-development-only-key"  # noqa: S105 - refused outside dev
MIN_SECRET_LENGTH = 32  # HS256 wants a key of at least 256 bits
DEVELOPMENT_ENVIRONMENTS = frozenset({"local", "test"})

# Drivers the app is written and tested against: both are async.
_DRIVER_FOR_BACKEND = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_BACKEND_ALIASES = {"postgres": "postgresql"}
_KEY_HINT = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    project_name: str = PROJECT_NAME
    environment: Literal["local", "test", "staging", "production"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # The role the app runs as. On PostgreSQL: neither the tables' owner nor a superuser, and
    # without BYPASSRLS, so that row-level security applies to it (`make db-setup` creates it).
    database_url: str = "sqlite+aiosqlite:///./app.db"
    # The owner, which runs migrations (`make db-setup`, `make migrate`); empty: DATABASE_URL.
    database_admin_url: str | None = None
    # PostgreSQL connections per process: what one worker runs at once (README, "Pool size").
    database_pool_size: int = Field(default=20, ge=1, le=100)
    database_max_overflow: int = Field(default=0, ge=0, le=100)

    # Larger request bodies are refused with 413 before they are read into memory.
    max_request_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024**3)

    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    access_token_expire_minutes: int = Field(default=30, ge=1, le=60 * 24)

    # CORS_ORIGINS=https://a.example,https://b.example (or a JSON list)
    cors_origins: Annotated[list[str], NoDecode] = []

    # ERROR_ROUTE=true mounts GET /api/v1/error, which always fails with a 500: for
    # benchmarks of the error path and end-to-end checks of error reporting. Not in production.
    error_route: bool = False

    # Failed logins allowed per account (e-mail) and per client address within the window;
    # further attempts answer 429 with Retry-After until the window ends.
    login_max_failures_per_account: int = Field(default=5, ge=1, le=10_000)
    login_max_failures_per_address: int = Field(default=50, ge=1, le=1_000_000)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1, le=7 * 24 * 3600)

    @field_validator("database_admin_url", mode="before")
    @classmethod
    def _empty_admin_url(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", "database_admin_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        """Accept the URL forms people paste and normalise them to the async drivers."""
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "must be a database URL such as sqlite+aiosqlite:///./app.db "
                "or postgresql+asyncpg://user:password@host:5432/dbname"
            ) from None
        backend = _BACKEND_ALIASES.get(url.get_backend_name(), url.get_backend_name())
        if backend not in _DRIVER_FOR_BACKEND:
            raise ValueError(
                f"unsupported database {url.get_backend_name()!r}; use sqlite or postgresql"
            )
        if backend == "postgresql" and "sslmode" in url.query:
            # Hosted PostgreSQL URLs carry libpq's ?sslmode=; asyncpg calls it ?ssl=.
            query = dict(url.query)
            query["ssl"] = query.pop("sslmode")
            url = url.set(query=query)
        return url.set(drivername=_DRIVER_FOR_BACKEND[backend]).render_as_string(
            hide_password=False
        )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().startswith("["):
            return json.loads(value)  # the JSON list form, as other settings libraries take it
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters; {_KEY_HINT}")
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_outside_development(self) -> Self:
        if self.environment in DEVELOPMENT_ENVIRONMENTS or not self.uses_placeholder_secret:
            return self
        raise ValueError(
            f"SECRET_KEY is the development placeholder; set a random value for "
            f"ENVIRONMENT={self.environment} ({_KEY_HINT})"
        )

    @model_validator(mode="after")
    def _no_error_route_in_production(self) -> Self:
        if self.error_route and self.environment == "production":
            raise ValueError("ERROR_ROUTE must be off when ENVIRONMENT=production")
        return self

    @model_validator(mode="after")
    def _one_kind_of_database(self) -> Self:
        # The two may differ in host and port (a pooler in front of the app), not in kind.
        admin = self.database_admin_url
        if admin is not None and make_url(admin).get_backend_name() != self.backend:
            raise ValueError(
                "DATABASE_ADMIN_URL must name the same kind of database as DATABASE_URL"
            )
        return self

    @property
    def admin_database_url(self) -> str:
        """The owner's URL (migrations, `make db-setup`): DATABASE_ADMIN_URL or DATABASE_URL."""
        return self.database_admin_url or self.database_url

    @property
    def backend(self) -> str:
        return make_url(self.database_url).get_backend_name()

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_placeholder_secret(self) -> bool:
        return self.secret_key.get_secret_value() == PLACEHOLDER_SECRET


class SettingsError(SystemExit):
    """Raised instead of a traceback: one line per bad setting, naming the variable."""


def describe_error(error: ErrorDetails) -> str:
    """One line naming the variable; never the value (it may be a secret)."""
    name = ".".join(str(part) for part in error["loc"]).upper()
    message = error["msg"].removeprefix("Value error, ")
    return f"{name}: {message}" if name else message


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [f"  {describe_error(error)}" for error in exc.errors()]
        raise SettingsError("Invalid configuration:\n" + "\n".join(lines)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
