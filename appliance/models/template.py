"""Contract templates: a PDF with its signature fields and party roles, to start contracts from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from appliance.models.base import Base, enum_column
from appliance.models.enums import PartyKind, Routing


class ContractTemplate(Base):
    __tablename__ = "contract_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    """The PDF in the blob store; every contract started from it begins with this file."""
    size: Mapped[int]
    filename: Mapped[str] = mapped_column(String(255))
    page_sizes: Mapped[str] = mapped_column(Text, default="[]")
    routing: Mapped[Routing] = mapped_column(enum_column(Routing, 20))
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
    """No new contracts start from it; those started earlier keep naming it."""

    roles: Mapped[list[TemplateRole]] = relationship(
        order_by="TemplateRole.number", cascade="all, delete-orphan"
    )


class TemplateRole(Base):
    """A party of the template: a person named when a contract starts, or a fixed seal."""

    __tablename__ = "template_roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(
        ForeignKey("contract_templates.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    """1-based position in the template's list of roles."""
    label: Mapped[str] = mapped_column(String(100))
    kind: Mapped[PartyKind] = mapped_column(enum_column(PartyKind, 20))
    seal_id: Mapped[int | None] = mapped_column(ForeignKey("seals.id"))
    routing_order: Mapped[int] = mapped_column(default=1)
    fields: Mapped[str] = mapped_column(Text)
    """JSON list of [page (0-based), x, y, width, height] in points."""
