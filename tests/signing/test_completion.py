"""The certificate of completion and the voiding agreement: rendered, read back by poppler,
accepted by preflight, and signed with HSM keys (the appliance's own, and the parties')."""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.db import transaction
from appliance.errors import InvalidInput
from appliance.pki.issue import appliance_key_label
from appliance.signing import Appearance, Placement, SignOptions, Verdict, preflight_pdf
from appliance.signing.completion import (
    MAX_VOIDING_PARTIES,
    CompletionFacts,
    CompletionParty,
    VoidingFacts,
    render_completion_certificate,
    render_voiding_agreement,
)
from appliance.signing.documents import resolve_signer, sign_stream, verify_file
from tests.conftest import require_backend
from tests.signing.conftest import SigningEnv, pdfsig_blocks, run_pdfsig

PAGE_WIDTH, PAGE_HEIGHT = 595.27, 841.89
MARGIN = 40.0
T0 = datetime(2024, 5, 6, 1, 2, 3, tzinfo=UTC)
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"
)


def digest(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def party(name: str, number: int, **changes: object) -> CompletionParty:
    base = CompletionParty(
        name=name,
        kind="seal" if name.endswith("公司") else "person",
        signed_at=T0 + timedelta(hours=number),
        certificate_subject=f"C=CN, O=Example Corp, CN={name}",
        certificate_serial=digest(f"serial {number}")[:32],
        certificate_sha256=digest(f"certificate {number}"),
        client_address=f"10.1.2.{number}",
        user_agent=USER_AGENT,
        document_sha256_before=digest(f"version {number}"),
        document_sha256_after=digest(f"version {number + 1}"),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def completion_facts(
    parties: tuple[CompletionParty, ...], title: str = "采购合同 Purchase agreement"
) -> CompletionFacts:
    return CompletionFacts(
        contract_id=4711,
        title=title,
        initiator="李娜",
        organisation="北京示例科技有限公司",
        created_at=T0 - timedelta(days=2),
        sent_at=T0 - timedelta(days=1),
        completed_at=T0 + timedelta(hours=len(parties)),
        original_sha256=digest("original"),
        final_sha256=digest("final"),
        parties=parties,
        evidence_head_hash=digest("evidence head"),
        evidence_events=17,
    )


def voiding_facts(parties: tuple[str, ...], reason: str = "双方协商一致 / mutual agreement") -> VoidingFacts:
    return VoidingFacts(
        contract_id=4711,
        title="采购合同 Purchase agreement",
        final_sha256=digest("final"),
        completed_at=T0,
        parties=parties,
        requested_by="李娜",
        reason=reason,
        created_at=T0 + timedelta(days=30),
    )


def render_completion(facts: CompletionFacts) -> bytes:
    out = io.BytesIO()
    render_completion_certificate(facts, out)
    return out.getvalue()


def render_voiding(facts: VoidingFacts) -> tuple[bytes, tuple[tuple[float, float, float, float], ...]]:
    out = io.BytesIO()
    rects = render_voiding_agreement(facts, out)
    return out.getvalue(), rects


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    require_backend("pdftotext", shutil.which("pdftotext") is not None, "apt-get install poppler-utils")
    path = tmp_path / "text.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


Word = tuple[int, float, float, float, float, str]
"""Page number, then xMin, yMin, xMax, yMax in points from the top-left corner, then the text."""


def pdf_words(pdf: bytes, tmp_path: Path) -> list[Word]:
    require_backend("pdftotext", shutil.which("pdftotext") is not None, "apt-get install poppler-utils")
    path = tmp_path / "words.pdf"
    path.write_bytes(pdf)
    html = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", "-bbox", str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    words: list[Word] = []
    for number, page in enumerate(html.split("<page ")[1:], start=1):
        for match in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>', page
        ):
            x1, y1, x2, y2 = (float(match.group(i)) for i in range(1, 5))
            words.append((number, x1, y1, x2, y2, match.group(5)))
    return words


def assert_inside_margins(words: list[Word]) -> None:
    assert words
    for page, x1, y1, x2, y2, text in words:
        assert x1 >= MARGIN - 1 and x2 <= PAGE_WIDTH - MARGIN + 1, (page, text, x1, x2)
        assert y1 >= 0 and y2 <= PAGE_HEIGHT, (page, text, y1, y2)


def page_count(pdf: bytes) -> int:
    return preflight_pdf(io.BytesIO(pdf)).page_count


# -- rendering ---------------------------------------------------------------------------------


def test_completion_certificate_text_extracts_with_chinese_names_and_hashes(tmp_path: Path) -> None:
    facts = completion_facts((party("张伟", 1), party("北京示例科技有限公司", 2)))

    pdf = render_completion(facts)

    text = pdf_text(pdf, tmp_path)
    assert "Certificate of Completion / 签署完成证明" in text
    for value in (
        "张伟",
        "北京示例科技有限公司",
        "采购合同 Purchase agreement",
        "李娜",
        "2024-05-04 01:02:03 UTC",  # created
        "2024-05-06 02:02:03 UTC",  # the first signature
        facts.original_sha256,
        facts.final_sha256,
        facts.evidence_head_hash,
        USER_AGENT[:40],
    ):
        assert value in text, value
    for each in facts.parties:
        for value in (
            each.certificate_serial,
            each.certificate_sha256,
            each.document_sha256_before,
            each.document_sha256_after,
            each.client_address,
        ):
            assert value in text, value
    assert "Person / 个人" in text and "Organisation seal / 机构印章" in text
    facts_of_file = preflight_pdf(io.BytesIO(pdf))
    assert facts_of_file.page_count >= 1 and facts_of_file.signature_count == 0


def test_long_values_and_twenty_parties_wrap_and_paginate_inside_the_margins(tmp_path: Path) -> None:
    long_title = "关于二〇二四年度办公设备采购及维护服务的框架合同（含附件一至附件五）" * 8 + " Framework"
    parties = tuple(
        party(
            f"Party-{number:02d} 上海示例贸易有限公司第{number}分公司" + "长" * 40,
            number,
            user_agent=(USER_AGENT + " ") * 3 + "X" * 120,  # a 400-character header with one long token
            certificate_subject=f"C=CN, O={'Example Corp ' * 6}, OU={'Legal ' * 9}, CN=Party-{number:02d}",
            client_address="2001:db8:85a3:0000:0000:8a2e:0370:7334",
        )
        for number in range(1, 21)
    )
    facts = completion_facts(parties, title=long_title[:300])

    pdf = render_completion(facts)

    assert page_count(pdf) > 3
    assert_inside_margins(pdf_words(pdf, tmp_path))
    text = pdf_text(pdf, tmp_path)
    for number in range(1, 21):
        assert f"Party-{number:02d}" in text
    assert "X" * 60 in text.replace("\n", "")
    assert all(each.document_sha256_after in text for each in parties)


def test_a_voiding_agreement_keeps_every_signature_box_on_page_one(tmp_path: Path) -> None:
    names = (
        "张伟",
        "北京示例科技有限公司",
        *(f"Party-{number:02d} 上海示例贸易有限公司第{number}分公司" + "长" * 60 for number in range(3, 21)),
    )
    facts = voiding_facts(names, reason="因合同目的无法实现，经各方协商一致同意作废本合同。" * 60)

    pdf, rects = render_voiding(facts)

    assert len(rects) == 20
    for x1, y1, x2, y2 in rects:
        assert x2 - x1 >= 150 and y2 - y1 >= 50
        assert 0 <= x1 < x2 <= PAGE_WIDTH and 0 <= y1 < y2 <= PAGE_HEIGHT
    for index, a in enumerate(rects):
        for b in rects[index + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
    # in party order: left to right, then down the page
    assert [(-r[1], r[0]) for r in rects] == sorted((-r[1], r[0]) for r in rects)
    # the long reason continues on page 2, and no text of page 1 lies in a signature box
    assert page_count(pdf) >= 2
    words = pdf_words(pdf, tmp_path)
    assert_inside_margins(words)
    for page, wx1, wy1, wx2, wy2, text in words:
        if page != 1:
            continue
        bottom, top = PAGE_HEIGHT - wy2, PAGE_HEIGHT - wy1
        for x1, y1, x2, y2 in rects:
            assert wx2 <= x1 or x2 <= wx1 or top <= y1 or y2 <= bottom, (text, (x1, y1, x2, y2))
    text = pdf_text(pdf, tmp_path)
    assert "Voiding Agreement / 合同作废协议" in text and facts.final_sha256 in text
    assert "张伟" in text and "北京示例科技有限公司" in text and "Party-20" in text


def test_refusals_name_what_is_wrong() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        render_completion_certificate(completion_facts(()), io.BytesIO())
    with pytest.raises(InvalidInput, match="'robot'"):
        render_completion_certificate(completion_facts((party("张伟", 1, kind="robot"),)), io.BytesIO())
    with pytest.raises(InvalidInput, match="timezone-aware"):
        render_completion_certificate(
            completion_facts((party("张伟", 1, signed_at=datetime(2024, 1, 1)),)),
            io.BytesIO(),
        )
    with pytest.raises(InvalidInput, match="at least one"):
        render_voiding_agreement(voiding_facts(()), io.BytesIO())
    too_many = tuple(f"Party {n}" for n in range(MAX_VOIDING_PARTIES + 1))
    with pytest.raises(InvalidInput, match=f"at most {MAX_VOIDING_PARTIES}"):
        render_voiding_agreement(voiding_facts(too_many), io.BytesIO())
    # the most that fit still fit
    _pdf, rects = render_voiding(voiding_facts(too_many[:-1]))
    assert len(rects) == MAX_VOIDING_PARTIES and min(r[1] for r in rects) >= 0


# -- signing -------------------------------------------------------------------------------------


@pytest.mark.hsm
def test_the_appliance_key_signs_the_completion_certificate(signing_env: SigningEnv, tmp_path: Path) -> None:
    pdf = render_completion(completion_facts((party("张伟", 1),)))
    kit = signing_env.services.signing
    signed_path = tmp_path / "completion-signed.pdf"

    with transaction(signing_env.services.sessions) as session:
        signer = resolve_signer(session, kit, appliance_key_label(session))
    with signed_path.open("w+b") as out:
        signed = sign_stream(kit, signer, io.BytesIO(pdf), out)

    assert signed.input.sha256 == hashlib.sha256(pdf).hexdigest()
    report = verify_file(sessions=signing_env.services.sessions, clock=kit.clock, path=signed_path)
    assert report.verdict is Verdict.VALID, report.message
    (only,) = report.signatures
    assert only.valid and only.signer == "Example Corp E-Signature Appliance"
    blocks = pdfsig_blocks(run_pdfsig(signing_env.nss_dir(), signed_path))
    assert len(blocks) == 1
    assert "Example Corp E-Signature Appliance" in blocks[0]
    assert "Signature is Valid." in blocks[0] and "Certificate is Trusted." in blocks[0]


def dark_pixels(image: Image.Image, box: tuple[float, float, float, float], scale: int) -> int:
    x1, y1, x2, y2 = box
    # inset by two points: the printed box border is light grey, the stamp's ink is black
    region = image.crop(
        (
            int((x1 + 2) * scale),
            int((PAGE_HEIGHT - y2 + 2) * scale),
            int((x2 - 2) * scale),
            int((PAGE_HEIGHT - y1 - 2) * scale),
        )
    )
    return sum(region.histogram()[:128])


def render_page_one(pdf: Path) -> Image.Image:
    require_backend("pdftoppm", shutil.which("pdftoppm") is not None, "apt-get install poppler-utils")
    prefix = pdf.with_suffix("")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "144", "-f", "1", "-l", "1", "-singlefile", str(pdf), str(prefix)],
        check=True,
        timeout=120,
    )
    return Image.open(prefix.with_suffix(".png")).convert("L")


@pytest.mark.hsm
def test_each_party_signs_the_voiding_agreement_at_its_rectangle(
    signing_env: SigningEnv, tmp_path: Path
) -> None:
    names = ("张伟", "北京示例科技有限公司")
    pdf, rects = render_voiding(voiding_facts(names))
    signers = (signing_env.person, signing_env.issue_person("Li Na"))
    kit = signing_env.services.signing
    current = tmp_path / "voiding-0.pdf"
    current.write_bytes(pdf)

    for index, (issued, name, rect) in enumerate(zip(signers, names, rects, strict=True), start=1):
        with transaction(signing_env.services.sessions) as session:
            signer = resolve_signer(session, kit, issued.key.label)
        options = SignOptions(appearance=Appearance(placement=Placement(page=1, box=rect), signer_name=name))
        following = tmp_path / f"voiding-{index}.pdf"
        with current.open("rb") as source, following.open("w+b") as out:
            sign_stream(kit, signer, source, out, options)
        current = following

    report = verify_file(sessions=signing_env.services.sessions, clock=kit.clock, path=current)
    assert report.verdict is Verdict.VALID, report.message
    assert [s.valid for s in report.signatures] == [True, True]
    with current.open("rb") as stream:
        fields = [sig.sig_field for sig in PdfFileReader(stream).embedded_signatures]
        placed = [tuple(float(v) for v in field["/Rect"]) for field in fields]
    assert placed == [pytest.approx(rect) for rect in rects]
    # poppler draws each stamp inside its box, which was blank before
    before, after = render_page_one(tmp_path / "voiding-0.pdf"), render_page_one(current)
    for rect in rects:
        assert dark_pixels(before, rect, 2) == 0
        assert dark_pixels(after, rect, 2) > 200, rect
    blocks = pdfsig_blocks(run_pdfsig(signing_env.nss_dir(), current))
    assert len(blocks) == 2 and all("Signature is Valid." in block for block in blocks)
