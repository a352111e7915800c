from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime


class LoginFailure(Base):
    """Failed logins of one account or one client address in the current window
    (app/services/login_throttle.py). Not tenant-owned: a login has no tenant yet. The key is
    a keyed hash, so the table holds neither e-mail addresses nor client addresses."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
