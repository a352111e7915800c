from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from app.api.deps import SessionDep
from app.core.security import hash_password
from app.models import Tenant, User, UserRole
from app.schemas.tenant import TenantPublic, TenantSignup, TenantSignupResult
from app.schemas.user import UserPublic

router = APIRouter(prefix="/tenants", tags=["tenants"])

EMAIL_TAKEN = "A user with this e-mail already exists"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantSignupResult,
    responses={409: {"description": EMAIL_TAKEN}},
)
async def sign_up(body: TenantSignup, session: SessionDep) -> TenantSignupResult:
    """Create a tenant and its owner in one transaction."""
    if await session.scalar(select(User.id).where(User.email == body.email)):
        raise HTTPException(status.HTTP_409_CONFLICT, detail=EMAIL_TAKEN)
    tenant = Tenant(name=body.tenant_name)
    session.add(tenant)
    await session.flush()
    owner = User(
        tenant_id=tenant.id,
        email=body.email,
        hashed_password=hash_password(body.password),
        full_name=body.full_name,
        role=UserRole.owner,
    )
    session.add(owner)
    await session.commit()
    return TenantSignupResult(
        tenant=TenantPublic.model_validate(tenant), owner=UserPublic.model_validate(owner)
    )
