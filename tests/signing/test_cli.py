"""`appliance sign` and `appliance verify` against the real token and database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from appliance.cli import main
from appliance.models.enums import KeyPurpose
from appliance.models.pki import HsmKey
from tests.fixtures.pdfs import append_content_change, make_png
from tests.signing.conftest import SigningEnv

pytestmark = pytest.mark.hsm


def run(env: SigningEnv, *args: str):
    return CliRunner().invoke(main, ["--config", str(env.config_path), *map(str, args)])


def test_sign_then_verify_json(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    src = pdf_factory()
    out = tmp_path / "out.pdf"
    image = tmp_path / "seal.png"
    image.write_bytes(make_png())

    signed = run(
        signing_env,
        "sign",
        src,
        out,
        "--key",
        signing_env.person.key.label,
        "--page",
        "1",
        "--rect",
        "350,40,550,120",
        "--image",
        image,
        "--reason",
        "Approved",
    )
    assert signed.exit_code == 0, signed.output
    assert "B-LT" in signed.output

    verified = run(signing_env, "verify", out, "--json")
    assert verified.exit_code == 0, verified.output
    report = json.loads(verified.output)
    assert report["verdict"] == "valid"
    (sig,) = report["signatures"]
    assert sig["signer"] == "Zhang San"
    assert sig["trusted"] is True and sig["intact"] is True
    assert sig["modification"] == "none" and sig["coverage"] == "entire_file"
    assert sig["timestamp"]["trusted"] is True

    text = run(signing_env, "verify", out)
    assert text.exit_code == 0 and text.output.startswith("VALID")


def test_verify_reports_tampering_with_exit_3(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    out = tmp_path / "out.pdf"
    assert run(signing_env, "sign", pdf_factory(), out, "--key", signing_env.person.key.label).exit_code == 0
    attacked = tmp_path / "attacked.pdf"
    attacked.write_bytes(append_content_change(out.read_bytes()))

    result = run(signing_env, "verify", attacked)

    assert result.exit_code == 3
    assert result.output.startswith("NOT VALID")
    assert "modified_after_signing" in result.output


def test_sign_refuses_bad_input_without_output(signing_env: SigningEnv, tmp_path: Path) -> None:
    src = tmp_path / "empty.pdf"
    src.write_bytes(b"")
    out = tmp_path / "out.pdf"

    result = run(signing_env, "sign", src, out, "--key", signing_env.person.key.label)

    assert result.exit_code == 1
    assert "error: the file is empty" in result.output
    assert not out.exists()


def test_sign_with_unknown_key(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    result = run(signing_env, "sign", pdf_factory(), tmp_path / "o.pdf", "--key", "no-such-key")
    assert result.exit_code == 1
    assert "no key labelled 'no-such-key'" in result.output


@pytest.mark.parametrize("purpose", [KeyPurpose.TSA, KeyPurpose.ISSUING_CA, KeyPurpose.ROOT_CA])
def test_ca_and_tsa_keys_cannot_sign_documents(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, purpose: KeyPurpose
) -> None:
    with signing_env.services.sessions() as session:
        label = session.scalars(select(HsmKey.label).where(HsmKey.purpose == purpose)).first()
    assert label is not None
    out = tmp_path / "o.pdf"
    result = run(signing_env, "sign", pdf_factory(), out, "--key", label)
    assert result.exit_code == 1
    assert f"is the appliance's {purpose.value} key" in result.output
    assert not out.exists() and list(tmp_path.glob("*.tmp*")) == []


def test_verify_unsigned_and_not_pdf(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    unsigned = run(signing_env, "verify", pdf_factory(), "--json")
    assert unsigned.exit_code == 3
    assert json.loads(unsigned.output)["verdict"] == "no_signatures"
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"hello")
    result = run(signing_env, "verify", junk)
    assert result.exit_code == 1 and "not a PDF" in result.output
