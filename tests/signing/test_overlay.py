"""A later signature's widget must not hide what an earlier signature signed (security plan P08).

pyHanko's difference analysis counts a new signature after an approval signature as form
filling, whatever its appearance shows; the appliance renders the pages and compares.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from pyhanko.sign import signers
from pyhanko.sign.fields import SigFieldSpec, SigSeedSubFilter
from pyhanko.stamp import TextStampStyle

from appliance.signing import (
    Appearance,
    Modification,
    Placement,
    SignOptions,
    TrustMaterial,
    Verdict,
    sign_pdf,
    validate_pdf,
)
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import make_pdf, make_png
from tests.signing.conftest import NOW, SigningEnv, self_signed

TEXT_BOX = (60, 705, 420, 750)
"""Covers the line "Contract for testing" that make_pdf writes at (72, 720)."""


@pytest.fixture(scope="module")
def approved() -> tuple[TrustMaterial, signers.SimpleSigner, bytes]:
    cert, key = self_signed("First Signer")
    signer = signers.SimpleSigner(signing_cert=cert, signing_key=key, cert_registry=None)
    signed = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(make_pdf())),
        signers.PdfSignatureMetadata(field_name="First", subfilter=SigSeedSubFilter.PADES),
        signer=signer,
    )
    return TrustMaterial(roots=(cert,)), signer, signed.getvalue()


def _second_signature(signed: bytes, signer: signers.Signer, *, opaque: bool) -> bytes:
    """Another signer's visible signature over the signed text, with or without a white background."""
    background = RawContent(data=b"1 1 1 rg 0 0 360 45 re f", box=BoxConstraints(360, 45)) if opaque else None
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(field_name="Second", subfilter=SigSeedSubFilter.PADES),
        signer=signer,
        new_field_spec=SigFieldSpec("Second", on_page=0, box=TEXT_BOX),
        stamp_style=TextStampStyle(stamp_text="VOID", background=background, background_opacity=1.0),
    )
    return pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(signed))).getvalue()


def _report(data: bytes, trust: TrustMaterial):
    return validate_pdf(io.BytesIO(data), trust, FakeClock(NOW))


def test_opaque_signature_over_signed_text_invalidates_the_earlier_signature(approved) -> None:
    trust, signer, signed = approved
    attacked = _second_signature(signed, signer, opaque=True)

    report = _report(attacked, trust)

    first, second = report.signatures
    # pyHanko alone calls this form filling: the attack is invisible to difference analysis
    assert first.modification is Modification.FORM_FILLING
    assert "hidden_by_later_signature" in first.problems and not first.covers_whole_document
    assert second.valid  # the overlaying signature itself is intact; what it hides is the problem
    assert report.verdict is Verdict.INVALID


def test_translucent_stamp_over_text_keeps_the_earlier_signature_valid(approved) -> None:
    # a seal applied over a company's name, as seals are, hides nothing
    trust, signer, signed = approved
    report = _report(_second_signature(signed, signer, opaque=False), trust)
    assert report.verdict is Verdict.VALID, [s.problems for s in report.signatures]


def test_without_a_renderer_the_earlier_signature_is_not_valid(
    approved, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trust, signer, signed = approved
    monkeypatch.setenv("PATH", str(tmp_path))  # no pdftoppm, no prlimit: the check cannot run

    report = _report(_second_signature(signed, signer, opaque=False), trust)

    assert "overlay_unchecked" in report.signatures[0].problems
    assert report.verdict is Verdict.INVALID


def test_a_page_too_large_to_render_is_unchecked(approved) -> None:
    trust, signer, _signed = approved
    # same length, so the xref offsets stay right: a 9999-point-wide page
    poster = make_pdf().replace(b"/MediaBox [0 0 595 842]", b"/MediaBox [0 0 9999 99]")
    first = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(poster)),
        signers.PdfSignatureMetadata(field_name="First", subfilter=SigSeedSubFilter.PADES),
        signer=signer,
    ).getvalue()

    report = _report(_second_signature(first, signer, opaque=False), trust)

    assert "overlay_unchecked" in report.signatures[0].problems


@pytest.mark.hsm
def test_appliance_seal_over_the_text_of_an_earlier_signature_is_valid(
    signing_env: SigningEnv, fixed_clock: FakeClock
) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    seal = Appearance(placement=Placement(page=1, box=TEXT_BOX), image_png=make_png(), signer_name="示例公司")
    for source, output, options in (
        (io.BytesIO(make_pdf(seed=31)), first, SignOptions()),
        (first, second, SignOptions(appearance=seal)),
    ):
        with signing_env.signer() as signer:
            sign_pdf(
                source, output, signer=signer, trust=signing_env.trust(), clock=fixed_clock, options=options
            )

    report = validate_pdf(second, signing_env.trust(), fixed_clock)

    assert report.verdict is Verdict.VALID, [s.problems for s in report.signatures]
