from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from app.api.deps import SessionDep, SettingsDep
from app.core.security import create_access_token, verify_password
from app.models import User
from app.schemas.auth import Token
from app.schemas.common import is_storable

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/token", response_model=Token, responses={401: {"description": "Bad credentials"}})
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """OAuth2 password flow: `username` is the e-mail address."""
    email = form.username.strip().lower()
    user, valid, upgraded_hash = None, False, None
    # Text no database or hasher can take is simply a wrong credential, not a server error.
    if is_storable(email) and is_storable(form.password) and len(email) <= 320:
        user = await session.scalar(select(User).where(User.email == email))
        valid, upgraded_hash = verify_password(
            form.password, user.hashed_password if user else None
        )
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
