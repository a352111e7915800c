"""Tenant isolation as a safety net under the routes' own filters.

Once a request's session is bound to a tenant (`bind_tenant`, done by the auth dependency),
every ORM SELECT, UPDATE and DELETE touching a `TenantScoped` model gets
`tenant_id = <caller's tenant>` added by SQLAlchemy itself, and a flush that would write a
row into another tenant raises. A route that forgets its `where` clause still cannot leak.
"""

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Uuid, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

_TENANT_KEY = "tenant_id"
# Execution option for the rare query that must look across tenants (e.g. "is this e-mail
# taken anywhere?"); grep for it when auditing isolation.
ALL_TENANTS = "all_tenants"


class CrossTenantWriteError(RuntimeError):
    """A bug, not bad input: code tried to write a row into a tenant other than the caller's."""


class TenantScoped:
    """Mixin for rows owned by one tenant."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - SQLAlchemy's declared_attr signature
        return mapped_column(
            Uuid, ForeignKey("tenants.id", ondelete="CASCADE"), index=True, nullable=False
        )


class TenantSession(Session):
    """The sync session class behind every AsyncSession the app creates."""


def bind_tenant(session: Session, tenant_id: uuid.UUID) -> None:
    session.info[_TENANT_KEY] = tenant_id


def bound_tenant(session: Session) -> uuid.UUID | None:
    return session.info.get(_TENANT_KEY)


@event.listens_for(TenantSession, "do_orm_execute")
def _scope_queries_to_tenant(state: ORMExecuteState) -> None:
    tenant_id = bound_tenant(state.session)
    if tenant_id is None or state.is_column_load or state.is_relationship_load:
        return
    if state.execution_options.get(ALL_TENANTS, False):
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(
            with_loader_criteria(
                TenantScoped,
                lambda cls: cls.tenant_id == tenant_id,
                include_aliases=True,
            )
        )


@event.listens_for(TenantSession, "before_flush")
def _refuse_cross_tenant_writes(session: Session, _context: Any, _instances: Any) -> None:
    tenant_id = bound_tenant(session)
    if tenant_id is None:
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, TenantScoped) and obj.tenant_id != tenant_id:
            raise CrossTenantWriteError(f"{type(obj).__name__} belongs to another tenant")
