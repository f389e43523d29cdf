"""The validation report on foreign and malformed files (security-test-plan B1: P01, P05, P06, P16).

The foreign signer here is a software key with a self-signed certificate: it stands for a
PDF signed elsewhere, which is input to the validator, not a replacement for our HSM.
"""

from __future__ import annotations

import io
import re

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore

from appliance.signing import (
    Coverage,
    Modification,
    PdfRejected,
    RejectReason,
    TrustMaterial,
    Verdict,
    validate_pdf,
)
from appliance.signing import validate as validate_module
from tests.fixtures.pdfs import append_content_change, encrypted_pdf, make_pdf
from tests.signing.conftest import NOW, FixedClock, self_signed


@pytest.fixture(scope="module")
def foreign() -> tuple[asn1_x509.Certificate, bytes]:
    cert, key = self_signed()
    signer = signers.SimpleSigner(signing_cert=cert, signing_key=key, cert_registry=None)
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(make_pdf())),
        signers.PdfSignatureMetadata(field_name="Sig1", subfilter=SigSeedSubFilter.PADES),
        signer=signer,
    )
    return cert, out.getvalue()


def _report(data: bytes, trust: TrustMaterial):
    return validate_pdf(io.BytesIO(data), trust, FixedClock(NOW))


def test_foreign_signer_is_not_trusted(foreign) -> None:
    _cert, data = foreign
    report = _report(data, TrustMaterial(roots=()))
    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert sig.intact and sig.cryptographically_valid  # the maths is fine ...
    assert not sig.trusted and "untrusted" in sig.problems  # ... but nobody we trust vouches for it
    assert sig.signer == "Foreign Signer"


def test_foreign_signer_valid_once_an_admin_trusts_its_root(foreign) -> None:
    cert, data = foreign
    report = _report(data, TrustMaterial(roots=(cert,)))
    assert report.verdict is Verdict.VALID, report.signatures[0].problems
    assert report.signatures[0].coverage is Coverage.ENTIRE_FILE


def test_uncovered_tail_bytes_make_the_signature_partial(foreign) -> None:
    cert, data = foreign
    report = _report(data + b"\n% appended garbage after the signed revision\n", TrustMaterial(roots=(cert,)))
    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert not sig.covers_whole_document
    assert sig.coverage is not Coverage.ENTIRE_FILE


def test_tail_after_a_final_dss_revision_is_not_valid(foreign) -> None:
    cert, data = foreign
    buffer = io.BytesIO(data)
    signature = PdfFileReader(buffer).embedded_signatures[0]
    # a validation-data-only update after the signature, as LTV tools write them
    DocumentSecurityStore.add_dss(buffer, signature.pkcs7_content, certs=[cert], force_write=True)
    with_dss = buffer.getvalue()
    assert _report(with_dss, TrustMaterial(roots=(cert,))).verdict is Verdict.VALID
    tampered = with_dss + b"\n99 0 obj\n(appended, in no revision)\nendobj\n"
    report = _report(tampered, TrustMaterial(roots=(cert,)))
    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert not sig.covers_whole_document and "partial_coverage" in sig.problems


def test_emptied_contents_is_invalid_not_unknown(foreign) -> None:
    cert, data = foreign
    # universal signature forgery: the /Contents hex string replaced by zeros of the same length
    broken = re.sub(
        rb"/Contents <([0-9a-fA-F]+)>", lambda m: b"/Contents <" + b"0" * len(m.group(1)) + b">", data
    )
    assert broken != data
    report = _report(broken, TrustMaterial(roots=(cert,)))
    assert report.verdict is Verdict.INVALID
    assert not report.signatures[0].valid


def test_byterange_pointing_elsewhere_is_invalid(foreign) -> None:
    cert, data = foreign
    match = re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+)\s*\]", data)
    assert match is not None
    a, b, c, d = (int(x) for x in match.groups())
    forged = f"/ByteRange [{a} {b} {c + 10} {d - 10}]".encode()
    forged = forged.ljust(len(match.group(0)))
    broken = data[: match.start()] + forged + data[match.end() :]
    report = _report(broken, TrustMaterial(roots=(cert,)))
    assert report.verdict is Verdict.INVALID


def test_validator_never_skips_difference_analysis(foreign, monkeypatch: pytest.MonkeyPatch) -> None:
    """P06: an incremental-saving attack that pyHanko's bottom line passes with skip_diff is INVALID."""
    cert, data = foreign
    attacked = append_content_change(data)
    # the attack works on a validator that skips difference analysis ...
    reader = PdfFileReader(io.BytesIO(attacked))
    lenient = validate_pdf_signature(
        reader.embedded_signatures[0],
        signer_validation_context=TrustMaterial(roots=(cert,)).validation_context(),
        skip_diff=True,
    )
    assert lenient.bottom_line
    # ... and the appliance's validator, which really runs pyHanko (recorded, not replaced),
    # never asks it to skip, and rejects the file
    calls: list[object] = []
    real = validate_module.async_validate_pdf_signature

    async def recording(*args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("skip_diff"))
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(validate_module, "async_validate_pdf_signature", recording)
    report = _report(attacked, TrustMaterial(roots=(cert,)))

    assert calls == [False]
    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert sig.modification is Modification.OTHER and "modified_after_signing" in sig.problems


def test_unsigned_pdf_has_no_signatures() -> None:
    assert _report(make_pdf(), TrustMaterial(roots=())).verdict is Verdict.NO_SIGNATURES


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", RejectReason.EMPTY), (b"GIF89a", RejectReason.NOT_PDF), (None, RejectReason.ENCRYPTED)],
)
def test_unreadable_input_is_rejected(data: bytes | None, reason: RejectReason) -> None:
    with pytest.raises(PdfRejected) as refused:
        _report(encrypted_pdf() if data is None else data, TrustMaterial(roots=()))
    assert refused.value.reason is reason


def test_report_json_is_plain(foreign) -> None:
    import json

    cert, data = foreign
    as_json = _report(data, TrustMaterial(roots=(cert,))).to_json()
    text = json.dumps(as_json)
    assert as_json["verdict"] == "valid"
    assert as_json["signatures"][0]["coverage"] == "entire_file"
    assert "Foreign Signer" in text


def test_shadow_hide_and_replace_is_invalid() -> None:
    """P07: content prepared unreferenced before signing and switched in afterwards."""
    cert, key = self_signed("Shadow Test Signer")
    prepared = IncrementalPdfFileWriter(io.BytesIO(make_pdf()))
    shadow = prepared.add_object(
        generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 720 Td (Amount: 1,000,000) Tj ET\n")
    )
    with_shadow = io.BytesIO()
    prepared.write(with_shadow)
    signer = signers.SimpleSigner(signing_cert=cert, signing_key=key, cert_registry=None)
    signed = signers.sign_pdf(
        IncrementalPdfFileWriter(with_shadow),
        signers.PdfSignatureMetadata(field_name="Sig1", subfilter=SigSeedSubFilter.PADES),
        signer=signer,
    ).getvalue()
    trust = TrustMaterial(roots=(cert,))
    assert _report(signed, trust).verdict is Verdict.VALID

    attack = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = attack.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = generic.IndirectObject(shadow.idnum, shadow.generation, attack)
    attack.update_container(page)
    attacked = io.BytesIO()
    attack.write(attacked)  # no new object: only the page now points at the shadow content
    shown = PdfFileReader(attacked).root["/Pages"]["/Kids"][0]["/Contents"].data
    assert b"1,000,000" in shown  # the attack works: a viewer shows the shadow content

    report = _report(attacked.getvalue(), trust)

    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert sig.modification is Modification.OTHER and "modified_after_signing" in sig.problems
