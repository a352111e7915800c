import pytest

from app.core.config import PLACEHOLDER_SECRET, SettingsError, load_settings

STRONG_SECRET = "s" * 40


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_placeholder_secret_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environment=environment, secret_key=PLACEHOLDER_SECRET)
    assert "SECRET_KEY is the development placeholder" in str(error.value)
    assert f"ENVIRONMENT={environment}" in str(error.value)


@pytest.mark.parametrize("environment", ["local", "production"])
@pytest.mark.parametrize("secret", ["", "short", " " * 40])
def test_empty_short_or_blank_secrets_are_refused_everywhere(environment: str, secret: str) -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY: must be at least 32 characters"):
        load_settings(environment=environment, secret_key=secret)


def test_placeholder_secret_is_allowed_locally() -> None:
    settings = load_settings(environment="local", secret_key=PLACEHOLDER_SECRET)
    assert settings.uses_placeholder_secret


def test_a_real_secret_is_accepted_in_production() -> None:
    settings = load_settings(environment="production", secret_key=STRONG_SECRET)
    assert not settings.uses_placeholder_secret


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgresql+asyncpg://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgres://u:p@db/app?sslmode=require", "postgresql+asyncpg://u:p@db/app?ssl=require"),
        ("sqlite:///./app.db", "sqlite+aiosqlite:///./app.db"),
    ],
)
def test_database_urls_are_normalised_to_async_drivers(given: str, expected: str) -> None:
    assert load_settings(database_url=given).database_url == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u@db/app", "unsupported database 'mysql'"),
        ("not a url", "must be a database URL"),
    ],
)
def test_bad_database_urls_name_the_setting(given: str, message: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(database_url=given)
    assert "DATABASE_URL" in str(error.value)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "raw", ["https://a.example, https://b.example", '["https://a.example", "https://b.example"]']
)
def test_cors_origins_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("CORS_ORIGINS", raw)
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.access_token_expire_minutes == 5


def test_out_of_range_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "0")
    with pytest.raises(SettingsError, match="ACCESS_TOKEN_EXPIRE_MINUTES"):
        load_settings()
