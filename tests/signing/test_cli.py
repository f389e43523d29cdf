"""`appliance sign` and `appliance verify` against the real token and database."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from appliance.cli import main
from appliance.models.enums import KeyPurpose
from appliance.models.pki import HsmKey
from tests.fixtures.pdfs import append_content_change, flip_byte_in_signed_range, make_pdf, make_png
from tests.signing.conftest import SigningEnv, impostor_chain, self_signed, software_signed

pytestmark = pytest.mark.hsm


def run(env: SigningEnv, *args: object) -> Result:
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


def appliance(env: SigningEnv, *args: object) -> subprocess.CompletedProcess[str]:
    """The real command in its own process: stderr exactly as an operator sees it."""
    return subprocess.run(
        [sys.executable, "-m", "appliance", "--config", str(env.config_path), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(result: Result) -> str:
    """The refusal printed by the CLI: one `error:` line on stderr, no traceback, exit code 1."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught exception
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_verify_without_signatures_says_so(signing_env: SigningEnv, pdf_factory) -> None:
    unsigned = pdf_factory()

    as_json = run(signing_env, "verify", unsigned, "--json")
    as_text = run(signing_env, "verify", unsigned)

    assert as_json.exit_code == 3 and as_text.exit_code == 3
    report = json.loads(as_json.stdout)
    assert report["verdict"] == "no_signatures"
    assert report["message"] == "the document has no signatures"
    assert as_text.stdout == "NO SIGNATURES: the document has no signatures\n"


@pytest.mark.parametrize(("pages", "named"), [(3, "pages 1 to 3"), (1, "only page 1")])
def test_sign_on_a_page_past_the_end_names_the_pages(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, pages: int, named: str
) -> None:
    out = tmp_path / "out.pdf"
    args = ["--page", "99", "--rect", "350,40,550,120"]

    result = run(
        signing_env, "sign", pdf_factory(pages=pages), out, "--key", signing_env.person.key.label, *args
    )

    assert one_error_line(result) == f"error: page 99 does not exist: the document has {named}"
    assert not out.exists()


def _character_device(tmp_path: Path) -> Path:
    # as root, a device node of our own (the null device's numbers) in the test's folder, so a
    # regression replaces that node and not the machine's /dev/null; others cannot replace
    # /dev/null anyway
    if os.geteuid() != 0:
        return Path("/dev/null")
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return node


@pytest.mark.parametrize("kind", ["missing folder", "fifo", "character device"])
def test_sign_refuses_a_destination_that_is_not_a_new_path_or_regular_file(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, kind: str
) -> None:
    if kind == "missing folder":
        destination = tmp_path / "no-such-folder" / "out.pdf"
        expected = f"error: the folder {destination.parent} does not exist; create it first"
    else:
        if kind == "fifo":
            destination = tmp_path / "pipe"
            os.mkfifo(destination)
        else:
            destination = _character_device(tmp_path)
        expected = f"error: {destination} exists and is not a regular file; give a new path or a file"
    before = destination.lstat() if destination.exists() else None

    result = run(signing_env, "sign", pdf_factory(), destination, "--key", signing_env.person.key.label)

    assert one_error_line(result) == expected
    if before is None:
        assert not destination.parent.exists()
    else:
        after = destination.lstat()
        assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
        assert after.st_rdev == before.st_rdev
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_operator_sees_no_pyhanko_notices_or_tracebacks(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    label = signing_env.person.key.label
    basic, long_term, tampered = tmp_path / "b-b.pdf", tmp_path / "b-lt.pdf", tmp_path / "tampered.pdf"
    # a foreign signer's document changed afterwards: pyHanko finds an untrusted chain and an
    # unclassifiable change, and logs a warning with a traceback for each
    foreign_signed = software_signed(make_pdf(), *self_signed())
    tampered.write_bytes(append_content_change(foreign_signed))

    # in the real process, where an unhandled warning would reach stderr
    signed = appliance(signing_env, "sign", pdf_factory(), basic, "--key", label, "--no-timestamp")
    verified = appliance(signing_env, "verify", tampered, "--json")

    assert signed.returncode == 0 and signed.stderr == "", signed.stderr
    assert verified.returncode == 3 and verified.stderr == "", verified.stderr
    assert json.loads(verified.stdout)["signatures"][0]["problems"] == ["untrusted", "modified_after_signing"]
    # in this process: nothing at WARNING or above reaches a handler (stderr without handlers)
    caplog.set_level(logging.WARNING)
    assert run(signing_env, "sign", pdf_factory(), long_term, "--key", label).exit_code == 0
    assert run(signing_env, "verify", tampered).exit_code == 3
    assert caplog.records == []


def test_changed_bytes_are_reported_as_that_alone(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path
) -> None:
    signed = tmp_path / "signed.pdf"
    assert (
        run(signing_env, "sign", pdf_factory(), signed, "--key", signing_env.person.key.label).exit_code == 0
    )
    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(flip_byte_in_signed_range(signed.read_bytes()))

    (sig,) = json.loads(run(signing_env, "verify", tampered, "--json").stdout)["signatures"]
    text = run(signing_env, "verify", tampered).stdout

    assert sig["problems"] == ["digest_mismatch"]
    assert sig["intact"] is False and sig["cryptographically_valid"] is False
    assert sig["trusted"] is True and sig["trust_problem"] is None and sig["revocation"] == "good"
    assert "  trusted:       yes\n" in text and "  bytes intact:  NO\n" in text
    assert "digest_mismatch: the signed bytes were changed after signing" in text
    assert "trusted root" not in text and "untrusted" not in text


def test_docmdp_only_for_certified_documents(signing_env: SigningEnv, pdf_factory, tmp_path: Path) -> None:
    label = signing_env.person.key.label
    plain, certified = tmp_path / "plain.pdf", tmp_path / "certified.pdf"
    assert run(signing_env, "sign", pdf_factory(), plain, "--key", label).exit_code == 0
    assert run(signing_env, "sign", pdf_factory(), certified, "--key", label, "--lock").exit_code == 0
    for path in (plain, certified):
        path.write_bytes(append_content_change(path.read_bytes()))

    plain_report = json.loads(run(signing_env, "verify", plain, "--json").stdout)
    certified_report = json.loads(run(signing_env, "verify", certified, "--json").stdout)

    (sig,) = plain_report["signatures"]
    assert plain_report["certified"] is None
    assert sig["problems"] == ["modified_after_signing"] and sig["docmdp_ok"] is None
    (sig,) = certified_report["signatures"]
    assert certified_report["certified"] == "no_changes"
    assert sig["problems"] == ["modified_after_signing", "docmdp_violation"] and sig["docmdp_ok"] is False


def test_chain_copying_the_appliances_names_shows_other_fingerprints(
    signing_env: SigningEnv, pdf_factory, tmp_path: Path
) -> None:
    real = tmp_path / "real.pdf"
    assert run(signing_env, "sign", pdf_factory(), real, "--key", signing_env.person.key.label).exit_code == 0
    issuing_der = signing_env.issuing_ca_der()
    cert, key, chain = impostor_chain(
        signing_env.root_der, issuing_der, signing_env.person.certificate.dump()
    )
    impostor = tmp_path / "impostor.pdf"
    impostor.write_bytes(software_signed(make_pdf(), cert, key, chain))

    (real_sig,) = json.loads(run(signing_env, "verify", real, "--json").stdout)["signatures"]
    (fake_sig,) = json.loads(run(signing_env, "verify", impostor, "--json").stdout)["signatures"]
    text = run(signing_env, "verify", impostor).stdout

    names = ["Zhang San", "Example Corp Issuing CA", "Example Corp Root CA"]
    assert [c["name"] for c in real_sig["chain"]] == names
    assert [c["name"] for c in fake_sig["chain"]] == names  # the names alone look the same ...
    own = [signing_env.person.certificate.dump(), issuing_der, signing_env.root_der]
    assert [c["sha256"] for c in real_sig["chain"]] == [hashlib.sha256(der).hexdigest() for der in own]
    assert [c["note"] for c in real_sig["chain"]] == [None, None, None]
    fake = [cert, *chain]
    assert [c["sha256"] for c in fake_sig["chain"]] == [c.sha256.hex() for c in fake]  # ... these do not
    assert [c["note"] for c in fake_sig["chain"]] == [
        None,
        "not the appliance's CA",
        "not the appliance's CA",
    ]
    assert fake_sig["trusted"] is False and fake_sig["problems"] == ["untrusted"]
    assert "Example Corp Issuing CA (not the appliance's CA)" in text
    assert f"sha256 {chain[1].sha256.hex()}" in text
    assert hashlib.sha256(signing_env.root_der).hexdigest() not in text
