"""Bounds on what preflight and the validator will parse: page trees are counted, not believed,
and files beyond the validator's limits are refused with a clear reason before any signature
is examined (security test plan P13)."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from appliance.signing import (
    PdfRejected,
    RejectReason,
    ValidationLimits,
    Verdict,
    preflight_pdf,
    sign_pdf,
    validate_pdf,
)
from appliance.signing.preflight import inherited_attribute, iter_pages
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import make_pdf
from tests.signing.conftest import SigningEnv


def _rewrite(pdf: bytes, old: bytes, new: bytes) -> bytes:
    # same length, so every xref offset stays right
    assert len(old) == len(new) and pdf.count(old) == 1
    return pdf.replace(old, new)


def test_page_count_is_counted_not_believed() -> None:
    thirty_pages_claiming_ten = _rewrite(make_pdf(pages=30), b"/Count 30", b"/Count 10")

    with pytest.raises(PdfRejected) as over_limit:
        preflight_pdf(io.BytesIO(thirty_pages_claiming_ten), max_pages=20)
    assert over_limit.value.reason is RejectReason.TOO_MANY_PAGES
    assert "more than 20 pages" in str(over_limit.value)

    with pytest.raises(PdfRejected) as mismatch:
        preflight_pdf(io.BytesIO(thirty_pages_claiming_ten), max_pages=100)
    assert mismatch.value.reason is RejectReason.MALFORMED
    assert "declares 10 pages but holds 30" in str(mismatch.value)

    assert preflight_pdf(io.BytesIO(make_pdf(pages=30)), max_pages=30).page_count == 30


def test_a_page_tree_that_contains_itself_is_refused() -> None:
    # the first kid of the page tree (object 2) is object 2 again
    cyclic = _rewrite(make_pdf(pages=2), b"/Kids [6 0 R", b"/Kids [2 0 R")

    with pytest.raises(PdfRejected) as refused:
        preflight_pdf(io.BytesIO(cyclic))
    assert refused.value.reason is RejectReason.MALFORMED


def test_a_page_tree_node_without_kids_is_refused() -> None:
    no_kids = _rewrite(make_pdf(pages=1), b"/Kids [6 0 R]", b"/Kidz [6 0 R]")

    with pytest.raises(PdfRejected) as refused:
        preflight_pdf(io.BytesIO(no_kids))
    assert refused.value.reason is RejectReason.MALFORMED


@pytest.mark.hsm
def test_validator_refuses_files_beyond_its_limits(signing_env: SigningEnv, fixed_clock: FakeClock) -> None:
    once, twice = io.BytesIO(), io.BytesIO()
    for source, output in ((io.BytesIO(make_pdf(seed=21)), once), (once, twice)):
        with signing_env.signer() as signer:
            sign_pdf(source, output, signer=signer, trust=signing_env.trust(), clock=fixed_clock)
    trust = signing_env.trust()
    size = len(twice.getvalue())
    assert validate_pdf(twice, trust, fixed_clock).revisions == 3  # the original and two signatures
    at_the_limits = ValidationLimits(max_bytes=size, max_revisions=3, max_signatures=2)
    assert validate_pdf(twice, trust, fixed_clock, at_the_limits).verdict is Verdict.VALID

    for limits, message in (
        (ValidationLimits(max_bytes=size - 1), "can be checked here"),
        (ValidationLimits(max_revisions=2), "has 3 revisions"),
        (ValidationLimits(max_signatures=1), "more than 1 signatures"),
    ):
        with pytest.raises(PdfRejected) as refused:
            validate_pdf(twice, trust, fixed_clock, limits)
        assert refused.value.reason is RejectReason.TOO_LARGE
        assert message in str(refused.value)


def test_inherited_page_attributes_survive_a_parent_cycle() -> None:
    # the page is its own /Parent and has no /MediaBox: an unbounded walk up never ends
    cyclic = _rewrite(
        make_pdf(), b"/Parent 2 0 R /MediaBox [0 0 595 842]", b"/Parent 6 0 R /MediaBoy [0 0 595 842]"
    )
    reader = PdfFileReader(io.BytesIO(cyclic))
    ((_ref, page),) = iter_pages(reader)

    assert inherited_attribute(page, "/MediaBox") is None
    assert inherited_attribute(page, "/MediaBoy") is not None
