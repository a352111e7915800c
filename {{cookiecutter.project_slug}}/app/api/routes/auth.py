import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status

from app.api.deps import SessionDep, SettingsDep
from app.api.responses import BODY_ERRORS, error
from app.core.security import create_access_token, verify_password
from app.db.base import utc_now
from app.db.tenancy import bind_tenant
from app.models import User
from app.schemas.auth import LoginForm, Token
from app.schemas.common import MAX_PASSWORD_LENGTH, is_storable, normalize_email
from app.services.login_throttle import Throttle
from app.services.users import find_user_by_email

router = APIRouter(prefix="/auth", tags=["auth"])
logger = logging.getLogger(__name__)

THROTTLED = "Too many failed logins; try again later"


@router.post(
    "/token",
    response_model=Token,
    responses={
        **BODY_ERRORS,
        # The one answer to every failure, a username or password no account can have included.
        401: error("Bad credentials: no active account has this e-mail and password"),
        429: error(
            "Too many failed logins for this account or from this address",
            headers={"Retry-After": "Seconds until a login may be tried again"},
        ),
    },
)
async def login(
    form: Annotated[LoginForm, Form()],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """OAuth2 password flow: `username` is the e-mail address."""
    email = normalize_email(form.username.strip())
    address = request.client.host if request.client else None
    throttle = Throttle.for_login(settings, email, address)
    now = utc_now()
    blocked = await throttle.blocked(session, now)
    if blocked is not None:
        kind, wait = blocked
        # Neither the e-mail nor the password (nor the address) goes into the log.
        logger.warning("Login throttled: too many failures for this %s; retry in %d s", kind, wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, detail=THROTTLED, headers={"Retry-After": str(wait)}
        )
    user: User | None = None
    valid, upgraded_hash = False, None
    # Input no address, database or hasher can take is a wrong credential, not a server error;
    # an over-long password is refused before it costs a hash.
    password_ok = is_storable(form.password) and len(form.password) <= MAX_PASSWORD_LENGTH
    if email is not None and password_ok:
        user = await find_user_by_email(session, email)
        hashed = user.hashed_password if user else None
        valid, upgraded_hash = await verify_password(form.password, hashed)
    if user is None or not valid or not user.is_active:
        # One answer for every failure, with the same work behind it (a hash, a count): it
        # must not reveal which e-mails exist.
        await throttle.record_failure(session, now)
        await session.commit()
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect e-mail or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await throttle.reset_account(session)
    if upgraded_hash is not None:
        await bind_tenant(session, user.tenant_id)  # row-level security: the user's own tenant
        user.hashed_password = upgraded_hash
    await session.commit()
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    token = create_access_token(
        user.id, user.tenant_id, settings.secret_key.get_secret_value(), lifetime
    )
    return Token(access_token=token, expires_in=int(lifetime.total_seconds()))
