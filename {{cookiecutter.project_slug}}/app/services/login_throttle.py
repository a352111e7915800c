"""Failed logins counted per account and per client address, in the app's own database, so
that every worker and every host shares the counts (no other service needed).

A key reaches its limit after that many failures within the window that its first failure
opened; until the window ends, every login for that account or from that address answers
429 with Retry-After, the right password included, without a password hash being computed.
A successful login clears the account's count. Keys are HMACs (keyed with SECRET_KEY) of the
e-mail and the address: the table holds neither. Unknown e-mails are counted like known ones,
so the throttle does not tell them apart either. Concurrent failures may overshoot a limit
by the number of requests in flight; none gets past a window already closed.
"""

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.models import LoginFailure

ACCOUNT, ADDRESS = "account", "address"


@dataclass(frozen=True)
class Throttle:
    keys: dict[str, str]  # kind (ACCOUNT, ADDRESS) -> key
    limits: dict[str, int]
    window: timedelta

    @classmethod
    def for_login(cls, settings: Settings, email: str | None, address: str | None) -> "Throttle":
        secret = settings.secret_key.get_secret_value().encode()

        def key(kind: str, value: str) -> str:
            digest = hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
            return f"{kind}:{digest}"

        keys = {ACCOUNT: email, ADDRESS: address}
        return cls(
            keys={kind: key(kind, value) for kind, value in keys.items() if value},
            limits={
                ACCOUNT: settings.login_max_failures_per_account,
                ADDRESS: settings.login_max_failures_per_address,
            },
            window=timedelta(seconds=settings.login_failure_window_seconds),
        )

    async def blocked(self, session: AsyncSession, now: datetime) -> tuple[str, int] | None:
        """(kind, seconds to wait) for the key that waits longest, or None: not throttled."""
        if not self.keys:
            return None
        kinds = {key: kind for kind, key in self.keys.items()}
        rows = await session.scalars(select(LoginFailure).where(LoginFailure.key.in_(kinds)))
        worst: tuple[str, int] | None = None
        for row in rows:
            kind = kinds[row.key]
            left = (row.window_started_at + self.window - now).total_seconds()
            if left > 0 and row.failures >= self.limits[kind]:
                wait = max(1, math.ceil(left))
                if worst is None or wait > worst[1]:
                    worst = (kind, wait)
        return worst

    async def record_failure(self, session: AsyncSession, now: datetime) -> None:
        """Count one failure for each key, opening a new window where the last one ended."""
        if not self.keys:
            return
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        rows = [{"key": key, "failures": 1, "window_started_at": now} for key in self.keys.values()]
        statement = insert(LoginFailure).values(rows)
        expired = LoginFailure.window_started_at <= now - self.window
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[LoginFailure.key],
                set_={
                    "failures": case((expired, 1), else_=LoginFailure.failures + 1),
                    "window_started_at": case((expired, now), else_=LoginFailure.window_started_at),
                },
            )
        )

    async def reset_account(self, session: AsyncSession) -> None:
        if ACCOUNT in self.keys:
            await session.execute(
                delete(LoginFailure).where(LoginFailure.key == self.keys[ACCOUNT])
            )
