import pytest

from app.core.config import PLACEHOLDER_SECRET, SettingsError, load_settings

STRONG_SECRET = "s" * 40


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_placeholder_secret_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(environment=environment, secret_key=PLACEHOLDER_SECRET)
    assert "SECRET_KEY is the placeholder" in str(error.value)


def test_short_secret_is_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="at least 32 characters"):
        load_settings(environment="production", secret_key="short")


def test_placeholder_secret_is_allowed_locally() -> None:
    settings = load_settings(environment="local", secret_key=PLACEHOLDER_SECRET)
    assert settings.uses_placeholder_secret


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgresql+asyncpg://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
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


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    settings = load_settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.access_token_expire_minutes == 5


def test_out_of_range_values_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "0")
    with pytest.raises(SettingsError, match="ACCESS_TOKEN_EXPIRE_MINUTES"):
        load_settings()
