"""Settings read from the environment (and a `.env` file), validated once at start-up."""

import logging
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

logger = logging.getLogger(__name__)

# The one value of SECRET_KEY we ship; it is fine on a laptop and refused anywhere else.
PLACEHOLDER_SECRET = "changethis"  # noqa: S105 - a known placeholder, refused outside dev
DEVELOPMENT_ENVIRONMENTS = frozenset({"local", "test"})

# Drivers the app is written and tested against: both are async.
_DRIVER_FOR_BACKEND = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_BACKEND_ALIASES = {"postgres": "postgresql"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    project_name: str = {{ cookiecutter.project_name | tojson | replace('\\"', '\\u0022') }}
    environment: Literal["local", "test", "staging", "production"] = "local"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    database_url: str = "sqlite+aiosqlite:///./app.db"
    database_pool_size: int = Field(default=5, ge=1, le=100)
    database_max_overflow: int = Field(default=10, ge=0, le=100)

    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    access_token_expire_minutes: int = Field(default=30, ge=1, le=60 * 24)

    # Comma-separated in the environment: CORS_ORIGINS=https://a.example,https://b.example
    cors_origins: Annotated[list[str], NoDecode] = []

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept the URL forms people paste and normalise them to the async drivers."""
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
        return url.set(drivername=_DRIVER_FOR_BACKEND[backend]).render_as_string(
            hide_password=False
        )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_secret(self) -> Self:
        secret = self.secret_key.get_secret_value()
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        if secret == PLACEHOLDER_SECRET:
            raise ValueError(
                f"SECRET_KEY is the placeholder {PLACEHOLDER_SECRET!r}; set a random value "
                "for ENVIRONMENT=" + self.environment + " "
                '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        if len(secret) < 32:
            raise ValueError("SECRET_KEY must be at least 32 characters outside development")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def uses_placeholder_secret(self) -> bool:
        return self.secret_key.get_secret_value() == PLACEHOLDER_SECRET


class SettingsError(SystemExit):
    """Raised instead of a traceback: one line per bad setting, naming the variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"  {name}: {message}" if name else f"  {message}")
        raise SettingsError("Invalid configuration:\n" + "\n".join(lines)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
