"""Documents the appliance writes itself: the certificate of completion and the voiding agreement.

Both are A4 PDFs rendered with reportlab, headings in English and Simplified Chinese. Text is
set in LXGW WenKai (`appearance.STAMP_FONT`), embedded as a TrueType subset with a ToUnicode
map, so Chinese names render in every viewer and can be searched and copied. Hashes are set
in Courier, one of the 14 standard fonts, so 64 hex digits sit on one line and compare
easily by eye. Long values wrap (a word wider than its column is split) and long lists
continue on further pages; nothing is cut off.

The workflow signs the result with the appliance's document key
(`appliance.pki.issue.appliance_key_label`), and each party signs a voiding agreement at
the rectangle `render_voiding_agreement` returns for it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFError, TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    BaseDocTemplate,
    Flowable,
    Frame,
    KeepInFrame,
    KeepTogether,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from appliance.errors import InvalidInput, Unavailable
from appliance.signing.appearance import STAMP_FONT

FONT_NAME = "ApplianceLXGWWenKai"
MONO_FONT = "Courier"
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 40.0
FOOTER_Y = 22.0
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
LABEL_WIDTH = 150.0
HANGING_ROOM = 12.0
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
CREATOR = "E-Signature Appliance"

# The voiding agreement's signature area, at the foot of page 1: up to three columns of
# boxes, each with a caption above it naming the party. The boxes are at least 150 x 50
# points (a legible stamp); the agreement text above keeps at least MIN_TEXT_HEIGHT.
SIGNATURE_COLUMNS = 3
COLUMN_GAP = 12.0
BOX_HEIGHT = 54.0
MAX_BOX_WIDTH = 220.0
CAPTION_HEIGHT = 18.0
ROW_GAP = 6.0
ROW_PITCH = CAPTION_HEIGHT + BOX_HEIGHT + ROW_GAP
AREA_HEADING = 20.0
MIN_TEXT_HEIGHT = 100.0
MAX_SIGNATURE_ROWS = int((PAGE_HEIGHT - 2 * MARGIN - MIN_TEXT_HEIGHT - AREA_HEADING) // ROW_PITCH)
MAX_VOIDING_PARTIES = SIGNATURE_COLUMNS * MAX_SIGNATURE_ROWS
"""Most parties whose signature boxes fit on page 1 of a voiding agreement (24)."""

Rect = tuple[float, float, float, float]

_KIND_LABELS = {"person": "Person / 个人", "seal": "Organisation seal / 机构印章"}


@dataclass(frozen=True)
class CompletionParty:
    name: str
    kind: str
    """"person" or "seal"."""
    signed_at: datetime
    certificate_subject: str
    certificate_serial: str
    certificate_sha256: str
    client_address: str | None
    user_agent: str | None
    document_sha256_before: str
    document_sha256_after: str


@dataclass(frozen=True)
class CompletionFacts:
    contract_id: int
    title: str
    initiator: str
    organisation: str | None
    created_at: datetime
    sent_at: datetime | None
    completed_at: datetime
    original_sha256: str
    final_sha256: str
    parties: tuple[CompletionParty, ...]
    evidence_head_hash: str
    """Hash of the last evidence record of the contract (the head of its hash chain)."""
    evidence_events: int


@dataclass(frozen=True)
class VoidingFacts:
    contract_id: int
    title: str
    final_sha256: str
    completed_at: datetime
    parties: tuple[str, ...]
    """Names of the parties who sign the agreement, in signing order."""
    requested_by: str
    reason: str
    created_at: datetime


def render_completion_certificate(facts: CompletionFacts, output: BinaryIO) -> None:
    """Write the certificate of completion of a contract as a PDF into `output`.

    :raises InvalidInput: no parties, a party of unknown kind, or a naive datetime.
    :raises Unavailable: the font is not installed.
    """
    if not facts.parties:
        raise InvalidInput("a certificate of completion needs at least one signing party")
    styles = _Styles.make()
    story: list[Flowable] = [
        Paragraph("Certificate of Completion / 签署完成证明", styles.title),
        Paragraph(
            "This certificate records who signed the contract below, when, with which certificate, "
            "and the SHA-256 digest of the document before and after each signature. "
            "The e-signature appliance signs it digitally with its own key.",
            styles.body,
        ),
        Paragraph(
            "本证明记载下列合同的签署方、签署时间、所用证书以及每次签署前后文件的 SHA-256 摘要。"
            "本证明由电子签名系统以其自有密钥进行数字签名。",
            styles.body,
        ),
        Paragraph("Contract / 合同", styles.heading),
        _facts_table(
            styles,
            [
                ("Contract ID / 合同编号", styles.value(str(facts.contract_id))),
                ("Title / 合同标题", styles.value(facts.title)),
                ("Initiator / 发起人", styles.value(facts.initiator)),
                ("Organisation / 所属组织", styles.value(facts.organisation or "—")),
                ("Created / 创建时间", styles.value(_time(facts.created_at))),
                ("Sent / 发送时间", styles.value(_time(facts.sent_at) if facts.sent_at else "—")),
                ("Completed / 完成时间", styles.value(_time(facts.completed_at))),
                ("Original document SHA-256 / 原始文件 SHA-256", styles.digest(facts.original_sha256)),
                ("Final document SHA-256 / 最终文件 SHA-256", styles.digest(facts.final_sha256)),
            ],
        ),
        Paragraph(f"Signing parties / 签署方 ({len(facts.parties)})", styles.heading),
    ]
    for number, party in enumerate(facts.parties, start=1):
        story.append(_party_block(styles, number, party))
    story += [
        Paragraph("Evidence / 证据记录", styles.heading),
        _facts_table(
            styles,
            [
                ("Evidence records / 证据记录数", styles.value(str(facts.evidence_events))),
                ("Evidence chain head / 证据链末端哈希", styles.digest(facts.evidence_head_hash)),
            ],
        ),
    ]
    template = PageTemplate(
        id="page",
        frames=[Frame(MARGIN, MARGIN, CONTENT_WIDTH, PAGE_HEIGHT - 2 * MARGIN, id="body")],
        onPage=_footer(facts.contract_id),
    )
    _build(output, [template], story, title=f"Certificate of Completion / 签署完成证明 — {facts.title}")


def render_voiding_agreement(facts: VoidingFacts, output: BinaryIO) -> tuple[Rect, ...]:
    """Write the voiding agreement of a completed contract as a PDF into `output`.

    Returns one signature rectangle per party, in the order of `facts.parties`: (x1, y1, x2, y2)
    in points on page 1, from the lower-left corner, each at least 150 x 50 points and inside
    the page. The agreement text fills page 1 above the signature area and continues on
    further pages when it is long.

    :raises InvalidInput: no parties, more than MAX_VOIDING_PARTIES, or a naive datetime.
    :raises Unavailable: the font is not installed.
    """
    count = len(facts.parties)
    if count == 0:
        raise InvalidInput("a voiding agreement needs at least one party to sign it")
    if count > MAX_VOIDING_PARTIES:
        raise InvalidInput(
            f"a voiding agreement has room for at most {MAX_VOIDING_PARTIES} signatures; "
            f"this contract has {count} parties"
        )
    styles = _Styles.make()
    rects = _signature_rects(count)
    area_top = max(y2 for _x1, _y1, _x2, y2 in rects) + CAPTION_HEIGHT + AREA_HEADING
    completed = _time(facts.completed_at)
    story: list[Flowable] = [
        Paragraph("Voiding Agreement / 合同作废协议", styles.title),
        _facts_table(
            styles,
            [
                ("Contract ID / 合同编号", styles.value(str(facts.contract_id))),
                ("Title / 合同标题", styles.value(facts.title)),
                ("Completed / 完成时间", styles.value(completed)),
                ("Signed document SHA-256 / 已签署文件 SHA-256", styles.digest(facts.final_sha256)),
                ("Requested by / 申请人", styles.value(facts.requested_by)),
                ("Agreement created / 协议生成时间", styles.value(_time(facts.created_at))),
                ("Reason / 作废原因", styles.value(facts.reason)),
            ],
        ),
        Spacer(1, 6),
        Paragraph(
            "The parties named below agree that the contract identified above, completed on "
            f"{completed}, is void. The signed document whose SHA-256 digest is given above stays "
            "unchanged and archived with this agreement. The contract is recorded as voided once "
            "every party has signed this agreement.",
            styles.body,
        ),
        Paragraph(
            f"下列各方同意：上述合同（于 {completed} 签署完成）作废。"
            "SHA-256 摘要如上所示的已签署文件保持不变，并与本协议一并存档。"
            "各方均签署本协议后，该合同即登记为已作废。",
            styles.body,
        ),
        Paragraph(f"Parties / 各方 ({count})", styles.heading),
        *(styles.value(f"{number}. {name}") for number, name in enumerate(facts.parties, start=1)),
    ]
    first = PageTemplate(
        id="first",
        frames=[Frame(MARGIN, area_top + 6, CONTENT_WIDTH, PAGE_HEIGHT - MARGIN - area_top - 6, id="text")],
        onPage=_with_signature_area(_footer(facts.contract_id), styles, facts.parties, rects, area_top),
        autoNextPageTemplate="later",
    )
    later = PageTemplate(
        id="later",
        frames=[Frame(MARGIN, MARGIN, CONTENT_WIDTH, PAGE_HEIGHT - 2 * MARGIN, id="body")],
        onPage=_footer(facts.contract_id),
    )
    _build(output, [first, later], story, title=f"Voiding Agreement / 合同作废协议 — {facts.title}")
    return rects


def _signature_rects(count: int) -> tuple[Rect, ...]:
    """Boxes left to right, top to bottom, the last row resting on the bottom margin."""
    columns = min(SIGNATURE_COLUMNS, count)
    rows = -(-count // columns)
    width = min(MAX_BOX_WIDTH, (CONTENT_WIDTH - (columns - 1) * COLUMN_GAP) / columns)
    rects = []
    for index in range(count):
        row, column = divmod(index, columns)
        x1 = MARGIN + column * (width + COLUMN_GAP)
        y1 = MARGIN + (rows - 1 - row) * ROW_PITCH
        rects.append((x1, y1, x1 + width, y1 + BOX_HEIGHT))
    return tuple(rects)


def _with_signature_area(
    footer: Callable[[Canvas, BaseDocTemplate], None],
    styles: _Styles,
    parties: Sequence[str],
    rects: Sequence[Rect],
    area_top: float,
) -> Callable[[Canvas, BaseDocTemplate], None]:
    def draw(canvas: Canvas, doc: BaseDocTemplate) -> None:
        footer(canvas, doc)
        canvas.saveState()
        canvas.setFont(FONT_NAME, 11)
        canvas.drawString(MARGIN, area_top - 14, "Signatures / 各方签署")
        canvas.setStrokeColor(colors.grey)
        canvas.setLineWidth(0.5)
        canvas.line(MARGIN, area_top - 18, PAGE_WIDTH - MARGIN, area_top - 18)
        for number, (name, (x1, y1, x2, y2)) in enumerate(zip(parties, rects, strict=True), start=1):
            canvas.setStrokeColor(colors.lightgrey)
            canvas.rect(x1, y1, x2 - x1, y2 - y1, stroke=1, fill=0)
            # a long name shrinks to the caption's two lines rather than running into the next box
            caption = KeepInFrame(
                x2 - x1, CAPTION_HEIGHT - 2, [styles.caption(f"{number}. {name}")], mode="shrink"
            )
            caption.wrapOn(canvas, x2 - x1, CAPTION_HEIGHT - 2)
            caption.drawOn(canvas, x1, y2 + 1)
        canvas.restoreState()

    return draw


def _footer(contract_id: int) -> Callable[[Canvas, BaseDocTemplate], None]:
    def draw(canvas: Canvas, doc: BaseDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(FONT_NAME, 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(MARGIN, FOOTER_Y, f"Contract {contract_id} / 合同 {contract_id}")
        canvas.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y, f"Page {doc.page} / 第 {doc.page} 页")
        canvas.restoreState()

    return draw


def _party_block(styles: _Styles, number: int, party: CompletionParty) -> Flowable:
    kind = _KIND_LABELS.get(party.kind)
    if kind is None:
        raise InvalidInput(f"party {number} has kind {party.kind!r}; it must be 'person' or 'seal'")
    rows = [
        ("Signed at / 签署时间", styles.value(_time(party.signed_at))),
        ("Certificate subject / 证书主体", styles.value(party.certificate_subject)),
        ("Certificate serial / 证书序列号", styles.digest(party.certificate_serial)),
        ("Certificate SHA-256 / 证书 SHA-256 指纹", styles.digest(party.certificate_sha256)),
        ("Client address / 客户端地址", styles.value(party.client_address or "—")),
        ("User agent / 用户代理", styles.value(party.user_agent or "—")),
        ("Document before / 签署前文件 SHA-256", styles.digest(party.document_sha256_before)),
        ("Document after / 签署后文件 SHA-256", styles.digest(party.document_sha256_after)),
    ]
    heading = styles.subheading(f"{number}. {party.name} · {kind}")
    # kept on one page when it fits; a block taller than a page still splits
    return KeepTogether([heading, _facts_table(styles, rows)])


def _facts_table(styles: _Styles, rows: Sequence[tuple[str, Paragraph]]) -> Table:
    table = Table(
        # the label's English above its Chinese: the narrow column would break them mid-phrase
        [[styles.label(label.replace(" / ", "\n")), value] for label, value in rows],
        colWidths=[LABEL_WIDTH, CONTENT_WIDTH - LABEL_WIDTH],
        hAlign="LEFT",
        # a value taller than a page (a very long reason) splits inside its row
        splitInRow=1,
    )
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


@dataclass(frozen=True)
class _Styles:
    title: ParagraphStyle
    heading: ParagraphStyle
    body: ParagraphStyle
    subheading_style: ParagraphStyle
    label_style: ParagraphStyle
    value_style: ParagraphStyle
    digest_style: ParagraphStyle
    caption_style: ParagraphStyle

    @classmethod
    def make(cls) -> _Styles:
        font = _font()
        # CJK wrapping breaks between Chinese characters (as Chinese typesetting does) and
        # still only at spaces within Latin words; a word wider than its column is split.
        # It hangs closing punctuation (，。） past the line's end: the right indent keeps
        # room for one such glyph inside the margin.
        body = ParagraphStyle(
            "body",
            fontName=font,
            fontSize=9.5,
            leading=14,
            spaceAfter=4,
            wordWrap="CJK",
            rightIndent=HANGING_ROOM,
        )
        return cls(
            title=ParagraphStyle("title", parent=body, fontSize=18, leading=24, spaceAfter=10),
            heading=ParagraphStyle("heading", parent=body, fontSize=12, leading=16, spaceBefore=8),
            body=body,
            subheading_style=ParagraphStyle("subheading", parent=body, fontSize=10.5, spaceBefore=6),
            label_style=ParagraphStyle(
                "label", parent=body, fontSize=8, leading=11, textColor=colors.dimgrey
            ),
            value_style=ParagraphStyle("value", parent=body, fontSize=9, leading=12, spaceAfter=0),
            digest_style=ParagraphStyle("digest", fontName=MONO_FONT, fontSize=8, leading=12),
            caption_style=ParagraphStyle("caption", parent=body, fontSize=7.5, leading=9, spaceAfter=0),
        )

    def subheading(self, text: str) -> Paragraph:
        return _paragraph(text, self.subheading_style)

    def label(self, text: str) -> Paragraph:
        return _paragraph(text, self.label_style)

    def value(self, text: str) -> Paragraph:
        return _paragraph(text, self.value_style)

    def digest(self, text: str) -> Paragraph:
        return _paragraph(text, self.digest_style)

    def caption(self, text: str) -> Paragraph:
        return _paragraph(text, self.caption_style)


def _paragraph(text: str, style: ParagraphStyle) -> Paragraph:
    # Paragraph reads a markup language: names, titles and user agents are plain text
    return Paragraph(escape(text).replace("\n", "<br/>"), style)


def _time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise InvalidInput("the times of a completion or voiding document must be timezone-aware")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def _build(output: BinaryIO, templates: list[PageTemplate], story: list[Flowable], *, title: str) -> None:
    doc = BaseDocTemplate(
        output,
        pagesize=A4,
        pageTemplates=templates,
        title=title,
        author=CREATOR,
        creator=CREATOR,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN,
    )
    doc.build(story)


@functools.cache
def _font() -> str:
    """Register the embedded font once per process; its name for styles and the canvas."""
    if not STAMP_FONT.is_file():
        raise Unavailable(
            f"the document font {STAMP_FONT} is missing; install the Debian package "
            "fonts-lxgw-wenkai (installer/lib.sh does) and try again"
        )
    try:
        pdfmetrics.registerFont(TTFont(FONT_NAME, str(STAMP_FONT)))
    except (TTFError, OSError) as exc:
        raise Unavailable(
            f"the document font {STAMP_FONT} cannot be read; reinstall fonts-lxgw-wenkai"
        ) from exc
    return FONT_NAME
