"""The validation report on foreign and malformed files (security-test-plan B1: P01, P05, P06, P16).

The foreign signer here is a software key with a self-signed certificate: it stands for a
PDF signed elsewhere, which is input to the validator, not a replacement for our HSM.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re

import pytest
from asn1crypto import cms
from asn1crypto import keys as asn1_keys
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
    Revocation,
    TrustMaterial,
    Verdict,
    pyhanko_logs,
    validate_pdf,
)
from appliance.signing import validate as validate_module
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import append_content_change, encrypted_pdf, flip_byte_in_signed_range, make_pdf
from tests.signing.conftest import NOW, self_signed, software_signed


@pytest.fixture(scope="module")
def foreign_signer() -> tuple[asn1_x509.Certificate, asn1_keys.PrivateKeyInfo]:
    return self_signed()


@pytest.fixture(scope="module")
def foreign(foreign_signer) -> tuple[asn1_x509.Certificate, bytes]:
    cert, key = foreign_signer
    return cert, software_signed(make_pdf(), cert, key)


def _report(data: bytes, trust: TrustMaterial):
    return validate_pdf(io.BytesIO(data), trust, FakeClock(NOW))


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


# -- each fact on its own: bytes, signature value, trust, DocMDP --------------------------------


def _flip_signature_value(data: bytes) -> bytes:
    """Change one byte of the CMS signature value itself (not the signed document bytes)."""
    match = re.search(rb"/Contents <([0-9a-fA-F]+)>", data)
    assert match is not None
    der = bytes.fromhex(match.group(1).decode())
    signature = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["signature"].native
    at = der.index(signature) + len(signature) // 2
    flipped = der[:at] + bytes([der[at] ^ 0xFF]) + der[at + 1 :]
    hex_value = flipped.hex().encode()
    hex_value = hex_value.upper() if match.group(1).isupper() else hex_value
    return data[: match.start(1)] + hex_value + data[match.end(1) :]


def test_changed_bytes_under_a_trusted_chain_say_only_that(foreign) -> None:
    cert, data = foreign
    tampered = flip_byte_in_signed_range(data)

    (sig,) = _report(tampered, TrustMaterial(roots=(cert,))).signatures

    assert sig.problems == ["digest_mismatch"]
    assert not sig.intact and not sig.cryptographically_valid
    assert sig.trusted and sig.trust_problem is None  # the chain is judged on its own
    assert sig.revocation is Revocation.GOOD


def test_broken_signature_value_is_judged_apart_from_the_chain(foreign) -> None:
    cert, data = foreign
    forged = _flip_signature_value(data)

    (sig,) = _report(forged, TrustMaterial(roots=(cert,))).signatures

    assert sig.problems == ["signature_invalid"]
    assert sig.intact and not sig.cryptographically_valid
    assert sig.trusted and [c.sha256 for c in sig.chain] == [cert.sha256.hex()]
    (untrusted,) = _report(forged, TrustMaterial(roots=())).signatures
    assert untrusted.problems == ["signature_invalid", "untrusted"]


def test_docmdp_is_judged_only_in_certified_documents(foreign, foreign_signer) -> None:
    cert, data = foreign
    _cert, key = foreign_signer
    trust = TrustMaterial(roots=(cert,))

    (plain,) = _report(append_content_change(data), trust).signatures
    assert plain.problems == ["modified_after_signing"]
    assert plain.docmdp_ok is None and plain.docmdp is None

    certified = software_signed(make_pdf(), cert, key, certify=True)
    assert _report(certified, trust).verdict is Verdict.VALID
    report = _report(append_content_change(certified), trust)
    assert report.certified == "fill_forms"
    (sig,) = report.signatures
    assert sig.docmdp_ok is False
    assert sig.problems == ["modified_after_signing", "docmdp_violation"]


# -- pyHanko's log records ----------------------------------------------------------------------


def test_pyhanko_findings_are_one_info_line_and_a_debug_traceback(
    foreign, caplog: pytest.LogCaptureFixture
) -> None:
    _cert, data = foreign
    caplog.set_level(logging.DEBUG)

    _report(append_content_change(data), TrustMaterial(roots=()))  # untrusted and modified

    assert [r for r in caplog.records if r.name.startswith("pyhanko") and r.levelno >= logging.WARNING] == []
    routed = [r for r in caplog.records if r.name == "appliance.signing.pyhanko_logs"]
    lines = [r for r in routed if r.levelno == logging.INFO]
    tracebacks = [r for r in routed if r.levelno == logging.DEBUG]
    assert {"pyhanko.sign.validation.generic_cms", "pyhanko.sign.diff_analysis.policies"} <= {
        r.getMessage().split(" ", 1)[0] for r in lines
    }
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in lines)
    assert tracebacks and all(r.exc_info for r in tracebacks)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.exc_info]


def test_routed_loggers_are_pyhanko_modules() -> None:
    # a module renamed in a pyHanko upgrade would otherwise let its warnings through unnoticed
    for name in (*pyhanko_logs.FINDINGS_LOGGERS, pyhanko_logs.SIGNER_LOGGER):
        assert importlib.util.find_spec(name) is not None, name
