"""Composition root: builds every integration from the config, once, on demand.

Nothing here runs at import time, and nothing touches the HSM while building:
under gunicorn each worker opens the PKCS#11 module itself after the fork.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from appliance.auth import AuthService
from appliance.clock import Clock, SystemClock
from appliance.config import AppConfig, CodeChannel
from appliance.db import create_db_engine, create_session_factory
from appliance.directory import Directory, open_directory
from appliance.errors import Unavailable
from appliance.hsm import KeyCustody, check_hsm, create_custody
from appliance.notify import Mailer, SmtpMailer
from appliance.notify.channels import CodeSender, EmailCodeSender
from appliance.notify.webhook_transport import HttpTransport
from appliance.notify.webhooks import WebhookTransport
from appliance.signing.kit import SigningKit
from appliance.storage import BlobStore, FilesystemBlobStore
from appliance.workflow.context import WorkflowContext


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    check: Callable[[], None]
    """Returns when the dependency is usable; raises Unavailable (with a public reason) when not."""


@dataclass
class Services:
    config: AppConfig
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    clock: Clock
    readiness: list[ReadinessCheck] = field(default_factory=list)
    custody: KeyCustody | None = None
    """HSM key custody when `hsm` is configured; opens the module only on first use."""
    directory: Directory | None = None
    """LDAP/AD when `directory` is configured; connects only on first use."""
    signing: SigningKit = field(init=False)
    """Custody, clock and config for `appliance.signing.documents`; built once by build_services."""
    mailer: Mailer | None = None
    """SMTP when `mail.enabled`; notifications are mailed from the outbox by a job."""
    webhooks: WebhookTransport | None = None
    """HTTP(S) to `webhooks.allowed_hosts` when any are listed; deliveries go out from a job."""
    auth: AuthService = field(init=False)
    """Sign-in, sessions, API tokens and directory sync; built once by build_services."""
    workflow: WorkflowContext = field(init=False)
    """What the contract workflow's commands (appliance.workflow) need; built once by build_services."""


def build_services(cfg: AppConfig, clock: Clock | None = None) -> Services:
    engine = create_db_engine(cfg.database, cfg.secrets)
    blobs = FilesystemBlobStore(cfg.storage.path)
    services = Services(
        config=cfg,
        engine=engine,
        sessions=create_session_factory(engine),
        blobs=blobs,
        clock=clock or SystemClock(),
    )
    services.readiness.append(ReadinessCheck("database", lambda: check_database(engine)))
    services.readiness.append(ReadinessCheck("storage", blobs.check_writable))
    if cfg.hsm is not None:
        custody = create_custody(cfg.hsm, cfg.secrets.hsm_pin)
        services.custody = custody
        services.readiness.append(ReadinessCheck("hsm", lambda: check_hsm(custody)))
    services.signing = SigningKit(config=cfg, custody=services.custody, clock=services.clock)
    directory = open_directory(cfg, services.clock)
    if directory is not None:
        services.directory = directory
        services.readiness.append(ReadinessCheck("directory", directory.check_ready))
    if cfg.mail.enabled:
        services.mailer = SmtpMailer(cfg.mail, cfg.secrets.mail_password)
    if cfg.webhooks.allowed_hosts:
        services.webhooks = HttpTransport(cfg.webhooks)
    services.auth = AuthService(
        services.sessions, services.directory, cfg.auth, services.clock, mail=cfg.mail.enabled
    )
    code_senders: dict[CodeChannel, CodeSender] = {}
    if services.mailer is not None:
        code_senders[CodeChannel.EMAIL] = EmailCodeSender(services.mailer, cfg.mail.from_address)
    services.workflow = WorkflowContext(
        config=cfg,
        sessions=services.sessions,
        blobs=blobs,
        clock=services.clock,
        signing=services.signing,
        directory=services.directory,
        code_senders=code_senders,
        mail=cfg.mail.enabled,
    )
    return services


def check_database(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise Unavailable("database unreachable") from exc
