import uuid

from fastapi import APIRouter, status

from app.api.deps import SessionDep
from app.api.responses import BODY_ERRORS, error
from app.db.tenancy import bind_tenant
from app.models import Tenant, UserRole
from app.schemas.tenant import TenantPublic, TenantSignup, TenantSignupResult
from app.schemas.user import UserPublic
from app.services.users import EMAIL_TAKEN, add_user

router = APIRouter(prefix="/tenants", tags=["tenants"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantSignupResult,
    responses={**BODY_ERRORS, 409: error(EMAIL_TAKEN)},
)
async def sign_up(body: TenantSignup, session: SessionDep) -> TenantSignupResult:
    """Create a tenant and its owner in one transaction."""
    # The new tenant's id is chosen here, so that the transaction is bound to it from the
    # start: row-level security lets it write the tenant and its owner and nothing else.
    tenant = Tenant(id=uuid.uuid4(), name=body.tenant_name)
    await bind_tenant(session, tenant.id)
    session.add(tenant)
    await session.flush()
    owner = await add_user(
        session,
        tenant_id=tenant.id,
        email=body.email,
        password=body.password,
        full_name=body.full_name,
        role=UserRole.owner,
    )
    await session.commit()
    return TenantSignupResult(
        tenant=TenantPublic.model_validate(tenant), owner=UserPublic.model_validate(owner)
    )
