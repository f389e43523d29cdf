"""`appliance pki ...`: the internal CA (init, CRL, issue, revoke) and the external-CA CSR flow."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from appliance.audit import AuditRecord, append_event
from appliance.cli.common import load_cli_config, open_services, operator_name
from appliance.db import transaction
from appliance.errors import ConfigError
from appliance.models.enums import CertificateKind, RevocationReason
from appliance.models.pki import Certificate, Crl
from appliance.pki.bootstrap import export_pem, init_pki
from appliance.pki.ca import PkiContext, make_context
from appliance.pki.certs import SubjectInfo, fingerprint
from appliance.pki.crl import refresh_crl
from appliance.pki.external import add_trust_root, import_crl, retire_trust_root
from appliance.pki.issue import issue_certificate
from appliance.pki.revoke import revoke_by_serial
from appliance.services import Services


def _open(ctx: click.Context) -> tuple[Services, PkiContext]:
    cfg = load_cli_config(ctx)
    if cfg.hsm is None:
        raise ConfigError(["hsm: the section is missing; the PKI keeps its keys in the HSM"])
    services = open_services(cfg)
    return services, make_context(services.custody, cfg, services.clock)


@click.group()
def pki() -> None:
    """The appliance's certificate authority and timestamp authority."""


@pki.command("init")
@click.option(
    "--export-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for root.pem, issuing.pem, tsa.pem, chain.pem (default: pki/ next to the storage folder).",
)
@click.pass_context
def init(ctx: click.Context, export_dir: Path | None) -> None:
    """Create the root CA, issuing CA, TSA and appliance certificates (keys in the HSM); idempotent."""
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        summary = init_pki(session, pki_ctx)
        rows = (
            ("root", "root CA", summary.root),
            ("issuing", "issuing CA", summary.issuing),
            ("tsa", "TSA", summary.tsa),
            ("appliance", "appliance", summary.appliance),
        )
        for key, _name, row in rows:
            if key in summary.created:
                _log_change(session, pki_ctx, "pki.certificate_created", row, {"role": key})
        written = export_pem(session, export_dir or services.config.storage.path.parent / "pki")
    for key, name, row in rows:
        state = "created" if key in summary.created else "exists"
        click.echo(f"{name:11} {state:8} {row.subject}  sha256 {row.sha256_fingerprint}")
    click.echo(f"PEM files: {', '.join(str(p) for p in written)}")


@pki.command("crl")
@click.option("--root", is_flag=True, help="The root CA's CRL instead of the issuing CA's.")
@click.pass_context
def crl(ctx: click.Context, root: bool) -> None:
    """Publish a new CRL when the current one is near nextUpdate (run it from a timer)."""
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        current = refresh_crl(
            session, pki_ctx, CertificateKind.ROOT_CA if root else CertificateKind.ISSUING_CA
        )
        click.echo(f"CRL number {current.number}, next update {current.next_update:%Y-%m-%d %H:%M} UTC")


def _log_change(
    session: Session,
    pki_ctx: PkiContext,
    action: str,
    target: Certificate | Crl,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Record an operator's change to the PKI (a CA, a certificate, a trusted root, an external
    CA's CRL) in the operation log, with `extra` facts.

    Call it in the transaction that makes the change: the change stands only if it is logged.
    """
    details: dict[str, Any]
    if isinstance(target, Crl):
        details = {
            "issuer": session.get_one(Certificate, target.issuer_id).subject,
            "number": target.number,
            "this_update": target.this_update.isoformat(),
            "next_update": target.next_update.isoformat(),
            "sha256": fingerprint(target.der),
        }
    else:
        details = {"subject": target.subject, "serial": target.serial, "sha256": target.sha256_fingerprint}
    details.update(extra or {})
    append_event(
        session,
        AuditRecord(
            action=action,
            occurred_at=pki_ctx.now(),
            actor_name=operator_name(),
            object_type="crl" if isinstance(target, Crl) else "certificate",
            object_id=str(target.id),
            details=details,
        ),
    )


@pki.group("trust-root")
def trust_root() -> None:
    """External root CAs the appliance trusts (certificates imported from an enterprise CA)."""


@trust_root.command("add")
@click.argument("certificate", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def trust_root_add(ctx: click.Context, certificate: Path) -> None:
    """Trust the self-signed root CA in CERTIFICATE (DER or PEM); recorded in the operation log."""
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        row = add_trust_root(session, pki_ctx, certificate.read_bytes())
        _log_change(session, pki_ctx, "pki.trust_root_added", row)
        click.echo(f"trusted {row.subject}  sha256 {row.sha256_fingerprint}")


@trust_root.command("retire")
@click.argument("sha256")
@click.pass_context
def trust_root_retire(ctx: click.Context, sha256: str) -> None:
    """Stop trusting the admin-added root with this SHA-256 fingerprint; recorded in the operation log."""
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        row = retire_trust_root(session, sha256)
        _log_change(session, pki_ctx, "pki.trust_root_retired", row)
        click.echo(f"no longer trusted: {row.subject}")


@pki.command("import-crl")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def import_crl_command(ctx: click.Context, file: Path) -> None:
    """Store the CRL in FILE (DER or PEM) of an external CA; recorded in the operation log.

    Certificates of an external CA that name a CRL distribution point sign only while a
    current CRL of it is stored: run this with each new CRL, before the stored one's nextUpdate.
    """
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        crl = import_crl(session, pki_ctx, file.read_bytes())
        _log_change(session, pki_ctx, "pki.crl_imported", crl)
        issuer = session.get_one(Certificate, crl.issuer_id).subject
        click.echo(
            f"imported CRL number {crl.number} of {issuer}, next update {crl.next_update:%Y-%m-%d %H:%M} UTC"
        )


@pki.command("issue")
@click.option("--kind", type=click.Choice(["person", "organisation"]), required=True)
@click.option("--cn", "common_name", required=True, help="Common name (person's name or organisation).")
@click.option("--o", "organisation", default=None, help="Organisation (O).")
@click.option("--ou", "unit", default=None, help="Organisational unit (OU).")
@click.option("--email", default=None, help="E-mail address (subject and subjectAltName).")
@click.pass_context
def issue(
    ctx: click.Context,
    kind: str,
    common_name: str,
    organisation: str | None,
    unit: str | None,
    email: str | None,
) -> None:
    """Generate a key in the HSM and issue a signing certificate (operators and tests)."""
    services, pki_ctx = _open(ctx)
    subject = SubjectInfo(
        common_name=common_name,
        organisation=organisation,
        organisational_unit=unit,
        email=email,
        country=services.config.pki.country,
    )
    with transaction(services.sessions) as session:
        issued = issue_certificate(session, pki_ctx, kind=CertificateKind(kind), subject=subject)
        _log_change(session, pki_ctx, "pki.certificate_issued", issued.row, {"key": issued.key.label})
        click.echo(f"issued serial {issued.row.serial} for {issued.row.subject} (key {issued.key.label})")


@pki.command("revoke")
@click.option("--serial", required=True, help="Serial number (hex) of a certificate of the issuing CA.")
@click.option(
    "--reason",
    type=click.Choice([r.value for r in RevocationReason]),
    required=True,
    help="RFC 5280 reason.",
)
@click.pass_context
def revoke(ctx: click.Context, serial: str, reason: str) -> None:
    """Revoke a certificate and publish the new CRL."""
    services, pki_ctx = _open(ctx)
    with transaction(services.sessions) as session:
        row = revoke_by_serial(session, pki_ctx, serial, RevocationReason(reason))
        _log_change(session, pki_ctx, "pki.certificate_revoked", row, {"reason": reason})
        click.echo(f"revoked serial {row.serial} ({row.subject}): {reason}")
