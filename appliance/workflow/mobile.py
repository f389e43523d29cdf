"""Mobile access: what a person needs to reach the appliance from their phone over the VPN.

Everyone signed in sees the private-cloud address, the root CA fingerprint the app checks
the discovery document against (appliance.pki.discovery), and the link their QR code holds.

Sites that run the WireGuard role (`mobile.wireguard_clients_dir`) also hand each person
their own client configuration, `<login name>.conf`, once: collecting it is recorded with
the file's sha256, so a second attempt is refused until IT issues a new key (a new file).
The configuration holds the person's VPN private key; it is never logged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from appliance.auth.records import ClientInfo, Principal
from appliance.config import AppConfig
from appliance.db import transaction
from appliance.errors import Conflict, NotFound, Unavailable
from appliance.models import User, VpnHandout
from appliance.permissions import Action, require
from appliance.pki.discovery import DISCOVERY_PATH, fingerprints, setup_link
from appliance.workflow.access import active_user
from appliance.workflow.context import WorkflowContext
from appliance.workflow.store import log_user_action

MAX_VPN_CONFIG_BYTES = 8192
_CONFIG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class MobileSetup:
    address: str
    discovery_url: str
    link: str
    """What the QR code holds: the discovery URL with the root CA fingerprint."""
    root_ca_sha256: str
    issuing_ca_sha256: str
    tls_sha256: str | None
    minimum_client_version: str


@dataclass(frozen=True)
class VpnConfigState:
    """A person's WireGuard configuration: whether there is one, and when they collected it."""

    username: str
    available: bool
    collected_at: datetime | None


@dataclass(frozen=True)
class VpnConfig:
    filename: str
    text: str


def mobile_setup(ctx: WorkflowContext, principal: Principal) -> MobileSetup:
    """:raises PkiNotInitialised: no CA yet."""
    with ctx.sessions() as session:
        active_user(session, principal.user_id)
        found = fingerprints(session, ctx.config)
    return MobileSetup(
        address=ctx.config.private_cloud_address,
        discovery_url=f"{ctx.config.private_cloud_address}{DISCOVERY_PATH}",
        link=setup_link(ctx.config, found.root_ca),
        root_ca_sha256=found.root_ca,
        issuing_ca_sha256=found.issuing_ca,
        tls_sha256=found.tls,
        minimum_client_version=ctx.config.mobile.minimum_client_version,
    )


def my_vpn_config(ctx: WorkflowContext, principal: Principal) -> VpnConfigState | None:
    """The person's configuration; None when this site hands out none."""
    if ctx.config.mobile.wireguard_clients_dir is None:
        return None
    with ctx.sessions() as session:
        user = active_user(session, principal.user_id)
        return _state(session, ctx.config, user)


def collect_vpn_config(ctx: WorkflowContext, principal: Principal, client: ClientInfo) -> VpnConfig:
    """The person's WireGuard configuration, handed out once per content.

    :raises NotFound: this site hands out none, or IT made none for the person.
    :raises Conflict: they collected this one already.
    """
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        user = active_user(session, principal.user_id)
        data = _read_config(ctx.config, user.username)
        if data is None:
            raise NotFound(
                "There is no VPN configuration for you: ask IT to add you to the VPN (WireGuard) clients."
            )
        digest = hashlib.sha256(data).hexdigest()
        session.add(
            VpnHandout(
                user_id=user.id, config_sha256=digest, handed_out_at=now, client_address=client.address
            )
        )
        try:
            session.flush()
        except IntegrityError as exc:  # collected already (perhaps a moment ago, from another tab)
            raise Conflict(_COLLECTED) from exc
        log_user_action(
            session, "mobile.vpn_config_collected", user, client, now, "user", user.id, {"sha256": digest}
        )
    return VpnConfig(filename=f"{user.username}.conf", text=data.decode("utf-8", "replace"))


def vpn_handouts(ctx: WorkflowContext, principal: Principal) -> tuple[VpnConfigState, ...]:
    """Every configuration in the clients folder and whether its person collected it: for
    system admins. Empty when the site hands out none.

    :raises Forbidden: not a system admin.
    """
    with ctx.sessions() as session:
        admin = active_user(session, principal.user_id)
        require(admin.role_set(), Action.SET_UP_MOBILE_ACCESS, "Only a system admin sets up mobile access.")
        folder = ctx.config.mobile.wireguard_clients_dir
        if folder is None or not folder.is_dir():
            return ()
        names = sorted(p.stem for p in folder.glob("*.conf") if _CONFIG_NAME.match(p.stem))
        people = {u.username: u for u in session.scalars(select(User).where(User.username.in_(names)))}
        return tuple(
            _state(session, ctx.config, people[name])
            if name in people
            else VpnConfigState(name, available=True, collected_at=None)
            for name in names
        )


_COLLECTED = (
    "You have collected your VPN configuration already. If your phone was lost or replaced, "
    "ask IT for a new key: the new configuration can be collected once."
)


def _state(session: Session, config: AppConfig, user: User) -> VpnConfigState:
    data = _read_config(config, user.username)
    if data is None:
        return VpnConfigState(user.username, available=False, collected_at=None)
    collected = session.scalar(
        select(VpnHandout.handed_out_at).where(
            VpnHandout.user_id == user.id, VpnHandout.config_sha256 == hashlib.sha256(data).hexdigest()
        )
    )
    return VpnConfigState(user.username, available=True, collected_at=collected)


def _read_config(config: AppConfig, username: str) -> bytes | None:
    """The person's `<login>.conf` in the clients folder, or None (no file, an unsafe name)."""
    folder = config.mobile.wireguard_clients_dir
    if folder is None or not _CONFIG_NAME.match(username):
        return None
    path = Path(folder) / f"{username}.conf"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_VPN_CONFIG_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except PermissionError as exc:
        raise Unavailable(
            f"The appliance may not read {path}: give its group read access to "
            "mobile.wireguard_clients_dir (the WireGuard role's appliance_wireguard_clients_group)."
        ) from exc
    if len(data) > MAX_VPN_CONFIG_BYTES:
        return None  # not a WireGuard client configuration
    return data
