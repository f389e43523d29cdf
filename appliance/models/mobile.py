"""What the appliance hands to people's phones: their VPN configuration, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from appliance.models.base import Base


class VpnHandout(Base):
    """A person collected their WireGuard configuration with this content: never again."""

    __tablename__ = "vpn_handouts"
    __table_args__ = (UniqueConstraint("user_id", "config_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    config_sha256: Mapped[str] = mapped_column(String(64))
    """Of the file as handed out: IT issuing a new key makes a new file, which is collected anew."""
    handed_out_at: Mapped[datetime]
    client_address: Mapped[str | None] = mapped_column(String(64))
