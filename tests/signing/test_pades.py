"""Signing with the HSM key on a real SoftHSM2 token, checked by our report, pyHanko and pdfsig."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import CertificateValidator

from appliance.signing import (
    Appearance,
    CertificateNotUsable,
    Coverage,
    Modification,
    PadesLevel,
    PdfRejected,
    Placement,
    RejectReason,
    SigningFailed,
    SignOptions,
    Verdict,
    sign_pdf_file,
    validate_pdf,
)
from appliance.signing.appearance import stamp_style
from tests.conftest import require_backend
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import append_content_change, flip_byte_in_signed_range, make_pdf, make_png
from tests.signing.conftest import SigningEnv, pdfsig_blocks, run_pdfsig

pytestmark = pytest.mark.hsm


def sign(env: SigningEnv, src: Path, dst: Path, clock: FakeClock, **options: object):
    with env.signer() as signer:
        return sign_pdf_file(
            src,
            dst,
            signer=signer,
            trust=env.trust(),
            clock=clock,
            timestamper=env.timestamper(),
            options=SignOptions(**options),  # type: ignore[arg-type]
        )


def report_of(env: SigningEnv, path: Path, clock: FakeClock):
    with path.open("rb") as stream:
        return validate_pdf(stream, env.trust(), clock)


def test_invisible_signature_is_valid_for_us_pyhanko_and_pdfsig(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    src = pdf_factory()
    out = tmp_path / "signed.pdf"

    signed = sign(signing_env, src, out, fixed_clock)

    assert signed.level is PadesLevel.B_LT
    assert signed.signing_time == fixed_clock.now()
    assert out.read_bytes().startswith(src.read_bytes())  # incremental update
    report = report_of(signing_env, out, fixed_clock)
    assert report.verdict is Verdict.VALID
    (sig,) = report.signatures
    assert sig.signer == "Zhang San"
    assert sig.trusted and sig.intact and sig.covers_whole_document
    assert sig.coverage is Coverage.ENTIRE_FILE
    assert sig.signing_time == fixed_clock.now().replace(microsecond=0)
    assert sig.timestamp is not None and sig.timestamp.trusted
    assert sig.revocation.value == "good"
    assert [c.name for c in sig.chain] == ["Zhang San", "Example Corp Issuing CA", "Example Corp Root CA"]
    assert sig.chain[-1].sha256 == hashlib.sha256(signing_env.root_der).hexdigest()
    assert all(c.note is None for c in sig.chain)
    # pyHanko's own validator, with only our root trusted, agrees
    with out.open("rb") as stream:
        embedded = PdfFileReader(stream).embedded_signatures[0]
        status = validate_pdf_signature(embedded, signing_env.trust().validation_context())
        assert status.bottom_line and status.trusted
    # DSS carries the chain and CRLs (B-LT): validates offline
    with out.open("rb") as stream:
        assert "/DSS" in PdfFileReader(stream).root
    text = run_pdfsig(signing_env.nss_dir(), out)
    assert "Signature is Valid." in text
    assert "Certificate is Trusted." in text
    assert "Total document signed" in text


def test_visible_stamp_with_transparent_png(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    src = pdf_factory(pages=2)
    out = tmp_path / "stamped.pdf"
    appearance = Appearance(placement=Placement(page=2, box=(300, 60, 500, 160)), image_png=make_png())

    sign(signing_env, src, out, fixed_clock, appearance=appearance)

    with out.open("rb") as stream:
        reader = PdfFileReader(stream)
        sig_field = reader.embedded_signatures[0].sig_field
        assert [float(v) for v in sig_field["/Rect"]] == [300, 60, 500, 160]
        assert sig_field["/P"].get_object() == reader.root["/Pages"]["/Kids"][1].get_object()
        stream_obj = sig_field["/AP"]["/N"].get_object()
        images = _find_images(stream_obj)
        assert images, "the stamp has no image"
        assert any("/SMask" in image for image in images), "the PNG's transparency was lost"
    assert report_of(signing_env, out, fixed_clock).verdict is Verdict.VALID
    assert "Signature is Valid." in run_pdfsig(signing_env.nss_dir(), out)


def _find_images(xobject, depth: int = 0) -> list:
    found = []
    resources = xobject.get("/Resources")
    if resources is None or depth > 4:
        return found
    for value in resources.get("/XObject", {}).values():
        obj = value.get_object()
        if obj.get("/Subtype") == "/Image":
            found.append(obj)
        else:
            found.extend(_find_images(obj, depth + 1))
    return found


def test_second_signature_locks_and_timestamps_and_first_stays_valid(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    first = tmp_path / "first.pdf"
    second = tmp_path / "second.pdf"
    sign(signing_env, pdf_factory(), first, fixed_clock)
    other = signing_env.issue_person("Li Si")
    with signing_env.signer(other) as signer:
        signed = sign_pdf_file(
            first,
            second,
            signer=signer,
            trust=signing_env.trust(),
            clock=fixed_clock,
            timestamper=signing_env.timestamper(),
            options=SignOptions(lock_document=True, document_timestamp=True),
        )
    assert signed.level is PadesLevel.B_LTA
    assert signed.input.signature_count == 1

    report = report_of(signing_env, second, fixed_clock)
    assert report.verdict is Verdict.VALID, report
    kinds = [s.kind for s in report.signatures]
    assert kinds == ["signature", "signature", "document_timestamp"]
    assert report.signatures[0].modification is Modification.FORM_FILLING
    assert report.signatures[1].docmdp == "no_changes"
    assert report.signatures[1].modification is Modification.LTA_UPDATES
    assert report.signatures[2].coverage is Coverage.ENTIRE_FILE

    blocks = pdfsig_blocks(run_pdfsig(signing_env.nss_dir(), second))
    assert len(blocks) == 3
    for block in blocks[:2]:
        assert "Signature is Valid." in block and "Certificate is Trusted." in block
    # poppler cannot verify RFC 3161 document timestamps; it does see that the last covers everything
    assert "Total document signed" in blocks[2]

    # the lock holds: a further signature is refused and nothing is written
    third = tmp_path / "third.pdf"
    with pytest.raises(PdfRejected) as refused:
        sign(signing_env, second, third, fixed_clock)
    assert refused.value.reason is RejectReason.LOCKED
    assert not third.exists()


def test_byte_changed_in_signed_range_is_reported_by_us_and_pdfsig(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    out = tmp_path / "signed.pdf"
    sign(signing_env, pdf_factory(), out, fixed_clock)
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(flip_byte_in_signed_range(out.read_bytes()))

    report = report_of(signing_env, tampered, fixed_clock)

    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert sig.problems == ["digest_mismatch"]  # what is wrong, and only that:
    assert not sig.intact and not sig.cryptographically_valid
    assert sig.trusted and sig.trust_problem is None  # the chain is still the appliance's own
    assert "Digest Mismatch." in run_pdfsig(signing_env.nss_dir(), tampered)


def test_appended_page_content_update_is_reported_by_us_and_pdfsig(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    out = tmp_path / "signed.pdf"
    sign(signing_env, pdf_factory(), out, fixed_clock)
    attacked = tmp_path / "isa.pdf"
    attacked.write_bytes(append_content_change(out.read_bytes()))

    report = report_of(signing_env, attacked, fixed_clock)

    assert report.verdict is Verdict.INVALID
    (sig,) = report.signatures
    assert sig.intact  # the signed bytes are untouched ...
    assert sig.modification is Modification.OTHER  # ... but page content changed after them
    assert sig.coverage is Coverage.ENTIRE_REVISION
    assert not sig.covers_whole_document
    assert "modified_after_signing" in sig.problems
    text = run_pdfsig(signing_env.nss_dir(), attacked)
    assert "Not total document signed" in text and "Total document signed" not in text.replace(
        "Not total", ""
    )


def test_revoked_certificate_cannot_sign(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    issued = signing_env.issue_person("Wang Wu")
    signing_env.revoke(issued)
    out = tmp_path / "never.pdf"
    # certificates are judged at the clock's time, which must be after the revocation
    after_revocation = FakeClock(datetime.now(UTC))

    with signing_env.signer(issued) as signer, pytest.raises(CertificateNotUsable, match="revoked"):
        sign_pdf_file(
            pdf_factory(),
            out,
            signer=signer,
            trust=signing_env.trust(),
            clock=after_revocation,
            timestamper=signing_env.timestamper(),
        )
    assert not out.exists()
    assert list(tmp_path.glob(".*.part")) == []


def test_expired_certificate_cannot_sign(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    later = FakeClock(signing_env.person.certificate.not_valid_after + timedelta(days=1))
    out = tmp_path / "never.pdf"

    with pytest.raises(CertificateNotUsable, match="expired"):
        sign(signing_env, pdf_factory(), out, later)
    assert not out.exists()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", RejectReason.EMPTY),
        (b"PK\x03\x04 this is a zip file, not a PDF", RejectReason.NOT_PDF),
        ("encrypted", RejectReason.ENCRYPTED),
        ("broken_xref", RejectReason.MALFORMED),
        ("many_pages", RejectReason.TOO_MANY_PAGES),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    signing_env: SigningEnv, tmp_path: Path, fixed_clock: FakeClock, data: object, reason: RejectReason
) -> None:
    from tests.fixtures import pdfs

    builders = {
        "encrypted": pdfs.encrypted_pdf,
        "broken_xref": pdfs.broken_xref_pdf,
        "many_pages": lambda: make_pdf(pages=60),
    }
    payload = builders[data]() if isinstance(data, str) else data
    src = tmp_path / "input.pdf"
    src.write_bytes(payload)  # type: ignore[arg-type]
    out = tmp_path / "out.pdf"

    with pytest.raises(PdfRejected) as refused:
        sign(signing_env, src, out, fixed_clock, max_pages=50)

    assert refused.value.reason is reason
    assert refused.value.public  # a message that says what to fix
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["input.pdf"]


def test_existing_output_is_untouched_when_signing_fails(
    signing_env: SigningEnv, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    src = tmp_path / "input.pdf"
    src.write_bytes(b"not a pdf")
    out = tmp_path / "out.pdf"
    out.write_bytes(b"previous content")

    with pytest.raises(PdfRejected):
        sign(signing_env, src, out, fixed_clock)
    assert out.read_bytes() == b"previous content"


def test_signing_in_memory_streams(signing_env: SigningEnv, fixed_clock: FakeClock) -> None:
    from appliance.signing import sign_pdf

    out = io.BytesIO()
    with signing_env.signer() as signer:
        signed = sign_pdf(
            io.BytesIO(make_pdf()), out, signer=signer, trust=signing_env.trust(), clock=fixed_clock
        )
    assert signed.level is PadesLevel.B_B  # no timestamper given
    assert validate_pdf(out, signing_env.trust(), fixed_clock).verdict is Verdict.VALID


CHINESE_NAME = "北京示例科技有限公司 张伟"
STAMP_BOX = (150, 500, 450, 580)
PAGE_HEIGHT = 842  # make_pdf pages are A4 (595 x 842 points)
SCALE = 2  # pixels per point: rendered at 144 dpi


def render_page(pdf: Path, out_prefix: Path) -> Image.Image:
    """Page 1 rendered by poppler at 144 dpi, as greyscale."""
    require_backend("pdftoppm", shutil.which("pdftoppm") is not None, "apt-get install poppler-utils")
    dpi = str(72 * SCALE)
    subprocess.run(
        ["pdftoppm", "-png", "-r", dpi, "-f", "1", "-l", "1", "-singlefile", str(pdf), str(out_prefix)],
        check=True,
        timeout=120,
    )
    return Image.open(out_prefix.with_suffix(".png")).convert("L")


def dark_pixels(image: Image.Image, box: tuple[float, float, float, float]) -> int:
    x1, y1, x2, y2 = box
    region = image.crop(
        (int(x1 * SCALE), int((PAGE_HEIGHT - y2) * SCALE), int(x2 * SCALE), int((PAGE_HEIGHT - y1) * SCALE))
    )
    return sum(region.histogram()[:128])  # a grey image: counts of values 0..255


def test_chinese_name_on_the_stamp_renders_and_extracts(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, fixed_clock: FakeClock
) -> None:
    src = pdf_factory()
    out = tmp_path / "stamped-zh.pdf"
    appearance = Appearance(placement=Placement(page=1, box=STAMP_BOX), signer_name=CHINESE_NAME)

    sign(signing_env, src, out, fixed_clock, appearance=appearance)

    # poppler draws the stamp: the box is blank before signing and carries ink after
    before = dark_pixels(render_page(src, tmp_path / "before"), STAMP_BOX)
    rendered = render_page(out, tmp_path / "after")
    after = dark_pixels(rendered, STAMP_BOX)
    assert before == 0
    # ~50 glyphs at 7 pt; Courier-only stamps of the past drew nothing for the CJK part
    assert after > 400, f"only {after} dark pixels in the stamp box"
    # the text is centred; this strip holds only the end of the name line ("公司 张伟"), past the
    # end of the shorter time line, so its ink is CJK glyphs alone
    cjk_only = dark_pixels(rendered, (345, 500, 372, 580))
    assert cjk_only > 60, f"only {cjk_only} dark pixels where the Chinese characters are"
    # the text is real text in an embedded font with a ToUnicode map, so it extracts
    require_backend("pdftotext", shutil.which("pdftotext") is not None, "apt-get install poppler-utils")
    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(out), "-"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "张伟" in text and "北京示例科技有限公司" in text
    assert "Digitally signed by" in text
    with out.open("rb") as stream:
        sig_field = PdfFileReader(stream).embedded_signatures[0].sig_field
        fonts = _find_fonts(sig_field["/AP"]["/N"].get_object())
        assert any("LXGWWenKai" in str(font["/BaseFont"]) for font in fonts), fonts
    assert report_of(signing_env, out, fixed_clock).verdict is Verdict.VALID
    pdfsig = run_pdfsig(signing_env.nss_dir(), out)
    assert "Signature is Valid." in pdfsig and "Total document signed" in pdfsig


def _find_fonts(xobject, depth: int = 0) -> list:
    found = []
    resources = xobject.get("/Resources")
    if resources is None or depth > 4:
        return found
    found.extend(value.get_object() for value in resources.get("/Font", {}).values())
    for value in resources.get("/XObject", {}).values():
        found.extend(_find_fonts(value.get_object(), depth + 1))
    return found


def test_missing_stamp_font_is_a_clear_error(tmp_path: Path) -> None:
    appearance = Appearance(placement=Placement(page=1, box=STAMP_BOX), signer_name=CHINESE_NAME)
    with pytest.raises(SigningFailed, match="fonts-lxgw-wenkai"):
        stamp_style(appearance, font_path=tmp_path / "no-such-font.ttf")


def test_in_memory_signing_checks_the_chain_once_and_reports_exact_digests(
    signing_env: SigningEnv, fixed_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.signing import sign_pdf
    from appliance.signing.pathcache import SIGNER_PATHS

    SIGNER_PATHS.clear()  # a path cached by an earlier test would make this count 0
    source = make_pdf(payload_bytes=200_000, seed=7)
    signer_validations = []
    original = CertificateValidator.async_validate_usage

    async def counting(self: CertificateValidator, *args: object, **kwargs: object):
        if self._certificate.dump() == signing_env.person.certificate.dump():
            signer_validations.append(1)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(CertificateValidator, "async_validate_usage", counting)
    out = io.BytesIO(b"stale bytes from an earlier use of this buffer")
    with signing_env.signer() as signer:
        trust = signing_env.trust()
        signed = sign_pdf(io.BytesIO(source), out, signer=signer, trust=trust, clock=fixed_clock)

    assert len(signer_validations) == 1, "the signer's chain must be validated once per signature"
    data = out.getvalue()
    assert data.startswith(source)
    assert signed.input.sha256 == hashlib.sha256(source).hexdigest()
    assert signed.sha256 == hashlib.sha256(data).hexdigest()
    assert signed.size == len(data)
    report = validate_pdf(out, signing_env.trust(), fixed_clock)
    assert report.verdict is Verdict.VALID
    # the validation data (chain and CRLs) still goes into the file: B-LT content offline
    with io.BytesIO(data) as stream:
        dss = PdfFileReader(stream).root["/DSS"]
        assert len(dss["/Certs"]) >= 2 and len(dss["/CRLs"]) >= 1


def test_failed_in_memory_signing_leaves_the_output_empty(signing_env: SigningEnv) -> None:
    from appliance.signing import sign_pdf

    issued = signing_env.issue_person("Zhao Liu")
    signing_env.revoke(issued)
    after_revocation = FakeClock(datetime.now(UTC))
    out = io.BytesIO(b"previous content")
    with signing_env.signer(issued) as signer, pytest.raises(CertificateNotUsable, match="revoked"):
        sign_pdf(
            io.BytesIO(make_pdf()), out, signer=signer, trust=signing_env.trust(), clock=after_revocation
        )
    assert out.getvalue() == b""
