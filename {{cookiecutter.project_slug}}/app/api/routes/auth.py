from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, status
from sqlalchemy import select

from app.api.deps import SessionDep, SettingsDep
from app.api.responses import BODY_ERRORS, error
from app.core.security import create_access_token, verify_password
from app.models import User
from app.schemas.auth import LoginForm, Token
from app.schemas.common import MAX_PASSWORD_LENGTH, is_storable, normalize_email

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/token",
    response_model=Token,
    responses={
        **BODY_ERRORS,
        # The one answer to every failure, a username or password no account can have included.
        401: error("Bad credentials: no active account has this e-mail and password"),
    },
)
async def login(
    form: Annotated[LoginForm, Form()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """OAuth2 password flow: `username` is the e-mail address."""
    email = normalize_email(form.username.strip())
    user, valid, upgraded_hash = None, False, None
    # Input no address, database or hasher can take is a wrong credential, not a server error;
    # an over-long password is refused before it costs a hash.
    password_ok = is_storable(form.password) and len(form.password) <= MAX_PASSWORD_LENGTH
    if email is not None and password_ok:
        user = await session.scalar(select(User).where(User.email == email))
        hashed = user.hashed_password if user else None
        valid, upgraded_hash = await verify_password(form.password, hashed)
    if user is None or not valid or not user.is_active:
        # One answer for every failure: it must not reveal which e-mails exist.
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect e-mail or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if upgraded_hash is not None:
        user.hashed_password = upgraded_hash
        await session.commit()
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    token = create_access_token(
        user.id, user.tenant_id, settings.secret_key.get_secret_value(), lifetime
    )
    return Token(access_token=token, expires_in=int(lifetime.total_seconds()))
