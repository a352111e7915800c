from fastapi import APIRouter

from app.api.responses import DATABASE_ERRORS
from app.api.routes import auth, items, tenants, users

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX, responses=DATABASE_ERRORS)
api_router.include_router(tenants.router)
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(items.router)
