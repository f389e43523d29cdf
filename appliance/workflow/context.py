"""What every workflow command needs besides its arguments, built once by build_services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from appliance.clock import Clock
from appliance.config import AppConfig, CodeChannel
from appliance.directory import Directory
from appliance.notify.channels import CodeSender
from appliance.signing.kit import SigningKit
from appliance.storage import BlobStore


@dataclass(frozen=True)
class WorkflowContext:
    config: AppConfig
    sessions: sessionmaker[Session]
    blobs: BlobStore
    clock: Clock
    signing: SigningKit
    directory: Directory | None = None
    """Where parties are looked up by name; None without a `directory` section."""
    code_senders: Mapping[CodeChannel, CodeSender] = field(default_factory=dict)
    """How verification codes reach people (e-mail when mail is on)."""
    mail: bool = False
    """Whether notices are also mailed (the outbox's mail column)."""
