"""`appliance sign` and `appliance verify`: PAdES signing with an HSM key, and the validation report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from appliance.cli.common import load_cli_config, open_services
from appliance.db import transaction
from appliance.errors import InvalidInput
from appliance.signing import (
    DEFAULT_MAX_PAGES,
    Appearance,
    Placement,
    SignatureFacts,
    SignOptions,
    ValidationReport,
    Verdict,
)
from appliance.signing.documents import resolve_signer, sign_stream, verify_file
from appliance.signing.errors import PdfRejected, RejectReason
from appliance.signing.pades import open_pdf_source
from appliance.signing.validate import PROBLEM_MESSAGES, TRUST_PROBLEM_MESSAGES
from appliance.storage import atomic_output

EXIT_NOT_VALID = 3
"""`verify` exit code when the file's signatures are not valid (1 stays "could not check")."""


def _parse_rect(value: str) -> tuple[float, float, float, float]:
    try:
        x1, y1, x2, y2 = (float(part) for part in value.split(","))
    except ValueError as exc:
        raise PdfRejected(
            RejectReason.BAD_PLACEMENT, "--rect takes four numbers x1,y1,x2,y2 in PDF points"
        ) from exc
    return x1, y1, x2, y2


@click.command()
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "key_label", required=True, help="Label of the signing key in the HSM.")
@click.option("--page", type=int, default=None, help="Page (from 1) of a visible signature.")
@click.option("--rect", default=None, help="Rectangle x1,y1,x2,y2 in points for a visible signature.")
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PNG signature or seal image for the visible stamp (transparency kept).",
)
@click.option("--name", "signer_name", default=None, help="Name on the stamp (default: certificate CN).")
@click.option("--reason", default=None, help="Reason recorded in the signature.")
@click.option("--location", default=None, help="Location recorded in the signature.")
@click.option("--lock", is_flag=True, help="Lock the document against later changes (last signature).")
@click.option("--lta", is_flag=True, help="Add a document timestamp (PAdES B-LTA).")
@click.option("--no-timestamp", is_flag=True, help="Sign without a signature timestamp (PAdES B-B).")
@click.option("--max-pages", type=click.IntRange(1), default=DEFAULT_MAX_PAGES, show_default=True)
@click.pass_context
def sign(
    ctx: click.Context,
    source: Path,
    destination: Path,
    key_label: str,
    page: int | None,
    rect: str | None,
    image: Path | None,
    signer_name: str | None,
    reason: str | None,
    location: str | None,
    lock: bool,
    lta: bool,
    no_timestamp: bool,
    max_pages: int,
) -> None:
    """Sign SOURCE into DESTINATION with an HSM key (incremental, PAdES B-LT). Invisible unless --page and
    --rect are given. DESTINATION is written only when signing succeeded."""
    appearance = None
    if lta and no_timestamp:
        raise InvalidInput("--lta adds a document timestamp; it cannot be combined with --no-timestamp")
    if (page is None) != (rect is None):
        raise PdfRejected(RejectReason.BAD_PLACEMENT, "give both --page and --rect for a visible signature")
    if page is not None and rect is not None:
        appearance = Appearance(
            placement=Placement(page=page, box=_parse_rect(rect)),
            image_png=image.read_bytes() if image else None,
            signer_name=signer_name,
        )
    options = SignOptions(
        appearance=appearance,
        reason=reason,
        location=location,
        lock_document=lock,
        document_timestamp=lta,
        max_pages=max_pages,
    )
    services = open_services(load_cli_config(ctx))
    # the paths are checked before the database and the HSM are: a missing input, a missing
    # folder or a destination that is not a regular file is refused at once
    with open_pdf_source(source) as src, atomic_output(destination.absolute()) as out:
        with transaction(services.sessions) as session:
            signer = resolve_signer(session, services.signing, key_label, timestamp=not no_timestamp)
        # signed after the commit, so the CRLs the signature embeds are stored ones
        signed = sign_stream(services.signing, signer, src, out, options)
    click.echo(
        f"signed {destination} ({signed.level.value}, field {signed.field_name}, "
        f"{signed.signing_time:%Y-%m-%d %H:%M:%S} UTC)"
    )
    click.echo(f"sha256 {signed.sha256}")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(ctx: click.Context, path: Path, as_json: bool) -> None:
    """Check every signature in PATH against the appliance's trust roots and CRLs.

    Exit status 0 when the document is validly signed, 3 when it is not (or has no
    signatures), 1 when it could not be checked.
    """
    services = open_services(load_cli_config(ctx))
    report = verify_file(sessions=services.sessions, clock=services.clock, path=path)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        _print_report(report)
    if report.verdict is not Verdict.VALID:
        ctx.exit(EXIT_NOT_VALID)


def _print_report(report: ValidationReport) -> None:
    verdicts = {Verdict.VALID: "VALID", Verdict.INVALID: "NOT VALID", Verdict.NO_SIGNATURES: "NO SIGNATURES"}
    click.echo(f"{verdicts[report.verdict]}: {report.message}")
    if report.certified:
        click.echo(f"certified: {report.certified}")
    for sig in report.signatures:
        click.echo("")
        click.echo(f"#{sig.index} {sig.kind} {sig.field_name or ''}: {'valid' if sig.valid else 'NOT VALID'}")
        click.echo(f"  signer:        {sig.signer}")
        _print_chain(sig)
        problem = TRUST_PROBLEM_MESSAGES.get(sig.trust_problem or "", sig.trust_problem)
        click.echo(
            f"  trusted:       {'yes' if sig.trusted else 'no'}" + (f" ({problem})" if problem else "")
        )
        if sig.signing_time:
            click.echo(f"  signing time:  {sig.signing_time.isoformat()} (claimed by the signer)")
        if sig.timestamp:
            click.echo(
                f"  timestamp:     {sig.timestamp.time.isoformat()} by {sig.timestamp.authority}"
                + ("" if sig.timestamp.trusted else " (NOT trusted)")
            )
        if sig.judged_at and sig.judged_at != report.validated_at:
            click.echo(
                f"  judged at:     {sig.judged_at.isoformat()} (proven by a later timestamp; expired since)"
            )
        click.echo(f"  bytes intact:  {'yes' if sig.intact else 'NO'}")
        click.echo(f"  coverage:      {sig.coverage.value}; later changes: {sig.modification.value}")
        if sig.docmdp:
            click.echo(f"  docmdp:        {sig.docmdp}")
        click.echo(f"  revocation:    {sig.revocation.value}")
        click.echo(f"  whole document: {'yes' if sig.covers_whole_document else 'NO'}")
        if sig.problems:
            click.echo("  problems:")
            for problem in sig.problems:
                click.echo(f"    {problem}: {PROBLEM_MESSAGES.get(problem, problem)}")


def _print_chain(sig: SignatureFacts) -> None:
    if not sig.chain:
        click.echo("  chain:         (none)")
    for position, cert in enumerate(sig.chain):
        label = "  chain:         " if position == 0 else "                 "
        note = f" ({cert.note})" if cert.note else ""
        click.echo(f"{label}{cert.name}{note}")
        click.echo(f"                   sha256 {cert.sha256}")
