"""Dependencies as named types, so a route's signature says what it needs."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

{% if cookiecutter.include_sentry == "yes" -%}
# Sentry seam: who is calling, on every event of the request.
from app import sentry
{% endif -%}
from app.core.config import Settings
from app.core.security import InvalidTokenError, decode_access_token
from app.db.session import Sessions, session_scope
from app.db.tenancy import bind_tenant
from app.models import User, UserRole

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token")


def get_app_settings(request: Request) -> Settings:
    """The settings the app was built with (not re-read from the environment)."""
    settings: Settings = request.app.state.settings
    return settings


# Methods that change nothing; their sessions read without a transaction (app/db/session.py).
READING_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessions: Sessions = request.app.state.sessions
    factory = sessions.reading if request.method in READING_METHODS else sessions.writing
    async for session in session_scope(factory):
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TokenDep = Annotated[str, Depends(oauth2_scheme)]


def _unauthorized(detail: str = "Could not validate credentials") -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_user(session: SessionDep, settings: SettingsDep, token: TokenDep) -> User:
    """The auth dependency: a valid token for an active user still in the token's tenant.

    It also binds the request's session to that tenant, so every query the route makes on
    tenant-owned tables is filtered to it, by the ORM and on PostgreSQL by the database too
    (see app/db/tenancy.py).
    """
    try:
        claims = decode_access_token(token, settings.secret_key.get_secret_value())
    except InvalidTokenError:
        raise _unauthorized() from None
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: the caller the signed token names, before the first query, so that an error
    # in the lookup itself (the database gone) is reported with its user and tenant too.
    sentry.set_user_context(claims.user_id, claims.tenant_id)
{%- endif %}
    # Bound to the token's tenant before the first query (free: it rides on what the session
    # sends first), so the user lookup itself runs under row-level security on PostgreSQL.
    await bind_tenant(session, claims.tenant_id)
    user = await session.get(User, claims.user_id)
    # A user deleted, deactivated or moved to another tenant since the token was issued
    # loses access at once, not when the token expires.
    if user is None or not user.is_active or user.tenant_id != claims.tenant_id:
        raise _unauthorized()
{%- if cookiecutter.include_sentry == "yes" %}
    # Sentry seam: now with the e-mail (sent only on opt-in).
    sentry.set_user_context(user.id, user.tenant_id, email=user.email)
{%- endif %}
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_owner(user: CurrentUser) -> User:
    if user.role is not UserRole.owner:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Only a tenant owner may do this")
    return user


CurrentOwner = Annotated[User, Depends(get_current_owner)]
