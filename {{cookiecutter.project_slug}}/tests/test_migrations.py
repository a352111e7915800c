"""The migrations build exactly the schema the models describe, and every revision can be
applied, reverted and applied again (a "stairway"), on the backend under test."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.base import Base
from tests.support.databases import (
    BACKEND,
    create_postgres_database,
    drop_postgres_database,
    sqlite_url,
)
from tests.support.helpers import PROJECT_ROOT


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "sqlite":
        yield sqlite_url(tmp_path)
        return
    url = asyncio.run(create_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


@pytest.fixture
def alembic_config(empty_database: str) -> Config:
    config = Config(PROJECT_ROOT / "alembic.ini")
    config.set_main_option("sqlalchemy.url", empty_database.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def _on_database(url: str, inspect_with: Any) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(inspect_with)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def test_migrations_match_the_models(alembic_config: Config, empty_database: str) -> None:
    command.upgrade(alembic_config, "head")
    assert _on_database(empty_database, _diff) == []


def test_upgrade_and_downgrade_every_revision(alembic_config: Config, empty_database: str) -> None:
    revisions = list(ScriptDirectory.from_config(alembic_config).walk_revisions("base", "heads"))
    assert revisions, "no migrations found"
    for revision in reversed(revisions):  # oldest first
        command.upgrade(alembic_config, revision.revision)
        command.downgrade(alembic_config, "-1")
        command.upgrade(alembic_config, revision.revision)
    assert _on_database(empty_database, _tables) == set(Base.metadata.tables)
    command.downgrade(alembic_config, "base")
    assert _on_database(empty_database, _tables) == set()
