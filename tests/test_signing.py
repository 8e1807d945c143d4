"""Signed registries: `registry sign`, and check/report/serve with a public key."""

from __future__ import annotations

import base64
import logging
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from dify_license_exporter import signing
from dify_license_exporter.cli import main
from dify_license_exporter.collector import LicenseCollector
from dify_license_exporter.refresh import Refresher
from dify_license_exporter.registry import RegistryError
from prometheus_client import CollectorRegistry, generate_latest

NOW = "2026-06-01T00:00:00Z"

REGISTRY = """\
licenses:
  - id: DIFY-ENT-TEST-0001
    name: prod-main
    effective: 2026-01-01
    expires: 2027-12-31
    mode: online
    bound_to: {cluster: prod-cn, namespace: dify}
instances:
  - cluster: prod-cn
    namespace: dify
    license: prod-main
    environment: production
    owner: Jane Roe
    department: AI Platform
renewals:
  - license: prod-main
    requester: procurement@example.com
    activator: sre@example.com
"""

SECOND_INSTANCE = """\
  - cluster: prod-cn
    namespace: dify-staging
    license: prod-main
    environment: staging
    owner: Jane Roe
    department: AI Platform
"""


def write_private_key(path, key, password: bytes | None = None) -> str:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return os.fspath(path)


def write_public_key(path, key) -> str:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )
    return os.fspath(path)


@pytest.fixture
def keys(tmp_path):
    """An Ed25519 key pair on disk: (private key path, public key path, key)."""
    key = Ed25519PrivateKey.generate()
    return (
        write_private_key(tmp_path / "signing.pem", key),
        write_public_key(tmp_path / "signing.pub.pem", key),
        key,
    )


@pytest.fixture
def registry_file(tmp_path) -> str:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return os.fspath(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check(capsys, registry: str, public_key: str) -> tuple[int, str, str]:
    return run(
        capsys,
        "check",
        "--registry",
        registry,
        "--registry-public-key",
        public_key,
        "--now",
        NOW,
        "--format",
        "json",
    )


def sign_hint(path: str) -> str:
    return f"sign it with `dify-license-exporter registry sign --key KEY.pem {path}`"


def mismatch_error(path: str) -> str:
    return (
        "error: invalid registry (1 problem):\n"
        f"  {path}: signature in {path}.sig does not match: the file changed after "
        "it was signed, or it was signed with a key other than --registry-public-key; "
        "review the change and sign the file again\n"
    )


def test_sign_writes_base64_signature(capsys, keys, registry_file):
    private_path, _, key = keys
    code, out, err = run(
        capsys, "registry", "sign", "--key", private_path, registry_file
    )
    assert code == 0
    assert out == f"wrote {registry_file}.sig\n"
    assert err == ""
    with open(registry_file + ".sig", encoding="ascii") as handle:
        text = handle.read()
    assert text.endswith("\n")
    signature = base64.b64decode(text.strip(), validate=True)
    assert len(signature) == 64
    with open(registry_file, "rb") as handle:
        key.public_key().verify(signature, handle.read())  # raises when invalid


def test_signed_registry_round_trip(capsys, keys, registry_file):
    private_path, public_path, _ = keys
    assert run(capsys, "registry", "sign", "--key", private_path, registry_file)[0] == 0
    code, out, err = check(capsys, registry_file, public_path)
    assert code == 0
    assert err == ""
    assert '"license": "prod-main"' in out


def test_sign_several_files(capsys, keys, tmp_path, registry_file):
    private_path, public_path, _ = keys
    second = tmp_path / "more.yaml"
    second.write_text("instances:\n" + SECOND_INSTANCE, encoding="utf-8")
    code, out, _ = run(
        capsys, "registry", "sign", "--key", private_path, registry_file, str(second)
    )
    assert code == 0
    assert out == f"wrote {registry_file}.sig\nwrote {second}.sig\n"
    code, out, err = run(
        capsys,
        "check",
        "--registry",
        registry_file,
        "--registry",
        str(second),
        "--registry-public-key",
        public_path,
        "--now",
        NOW,
    )
    assert code == 0
    assert err == ""
    assert "dify-staging" in out


def test_check_rejects_tampered_registry(capsys, keys, registry_file):
    private_path, public_path, _ = keys
    run(capsys, "registry", "sign", "--key", private_path, registry_file)
    with open(registry_file, "a", encoding="utf-8") as handle:
        handle.write("  - license: other\n")
    code, out, err = check(capsys, registry_file, public_path)
    assert code == 2
    assert out == ""
    assert err == mismatch_error(registry_file)


def test_check_rejects_one_changed_byte(capsys, keys, registry_file):
    private_path, public_path, _ = keys
    run(capsys, "registry", "sign", "--key", private_path, registry_file)
    with open(registry_file, encoding="utf-8") as handle:
        text = handle.read()
    with open(registry_file, "w", encoding="utf-8") as handle:
        handle.write(text.replace("2027-12-31", "2028-12-31"))
    code, _, err = check(capsys, registry_file, public_path)
    assert code == 2
    assert err == mismatch_error(registry_file)


def test_check_rejects_missing_signature(capsys, keys, registry_file):
    _, public_path, _ = keys
    code, out, err = check(capsys, registry_file, public_path)
    assert code == 2
    assert out == ""
    assert err == (
        "error: invalid registry (1 problem):\n"
        f"  {registry_file}: signature file {registry_file}.sig not found; "
        f"{sign_hint(registry_file)}\n"
    )


def test_check_rejects_signature_of_other_key(capsys, keys, tmp_path, registry_file):
    _, public_path, _ = keys
    other = write_private_key(tmp_path / "other.pem", Ed25519PrivateKey.generate())
    run(capsys, "registry", "sign", "--key", other, registry_file)
    code, _, err = check(capsys, registry_file, public_path)
    assert code == 2
    assert err == mismatch_error(registry_file)


def test_check_rejects_malformed_signature(capsys, keys, registry_file):
    _, public_path, _ = keys
    with open(registry_file + ".sig", "w", encoding="ascii") as handle:
        handle.write("bm90IGEgc2lnbmF0dXJl\n")  # valid base64, only 15 bytes
    code, _, err = check(capsys, registry_file, public_path)
    assert code == 2
    assert err == (
        "error: invalid registry (1 problem):\n"
        f"  {registry_file}: {registry_file}.sig is not a base64 Ed25519 signature; "
        f"{sign_hint(registry_file)}\n"
    )


def test_check_names_only_the_unsigned_file(capsys, keys, tmp_path, registry_file):
    private_path, public_path, _ = keys
    second = tmp_path / "more.yaml"
    second.write_text("instances:\n" + SECOND_INSTANCE, encoding="utf-8")
    run(capsys, "registry", "sign", "--key", private_path, registry_file)
    code, _, err = run(
        capsys,
        "check",
        "--registry",
        registry_file,
        "--registry",
        str(second),
        "--registry-public-key",
        public_path,
    )
    assert code == 2
    assert err == (
        "error: invalid registry (1 problem):\n"
        f"  {second}: signature file {second}.sig not found; {sign_hint(str(second))}\n"
    )


def test_check_without_key_ignores_signatures(capsys, registry_file):
    code, _, err = run(capsys, "check", "--registry", registry_file, "--now", NOW)
    assert code == 0
    assert err == ""


def test_report_rejects_unsigned_registry(capsys, keys, registry_file):
    _, public_path, _ = keys
    code, out, err = run(
        capsys,
        "report",
        "--registry",
        registry_file,
        "--registry-public-key",
        public_path,
        "--now",
        NOW,
        "--format",
        "csv",
    )
    assert code == 2
    assert out == ""
    assert f"{registry_file}.sig not found" in err


def test_serve_refuses_to_start_on_unsigned_registry(capsys, keys, registry_file):
    _, public_path, _ = keys
    code, _, err = run(
        capsys,
        "serve",
        "--registry",
        registry_file,
        "--registry-public-key",
        public_path,
        "--web.listen-address",
        "127.0.0.1:0",
    )
    assert code == 2
    assert f"{registry_file}.sig not found" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "file not found; check the path"),
        (
            b"not a key\n",
            "not a PEM public key; export it with "
            "`openssl pkey -in KEY.pem -pubout -out PUBLIC.pem`",
        ),
        ("ec", "the key is not an Ed25519 key; registry signatures use Ed25519"),
    ],
)
def test_check_rejects_bad_public_key(
    capsys, tmp_path, registry_file, content, message
):
    path = tmp_path / "public.pem"
    if content == "ec":
        write_public_key(path, ec.generate_private_key(ec.SECP256R1()))
    elif content is not None:
        path.write_bytes(content)
    code, out, err = check(capsys, registry_file, os.fspath(path))
    assert code == 2
    assert out == ""
    assert err == f"error: --registry-public-key {path}: {message}\n"


def test_sign_rejects_encrypted_key(capsys, tmp_path, registry_file):
    key_path = write_private_key(
        tmp_path / "encrypted.pem", Ed25519PrivateKey.generate(), b"passphrase"
    )
    code, out, err = run(capsys, "registry", "sign", "--key", key_path, registry_file)
    assert code == 2
    assert out == ""
    assert err == (
        f"error: --key {key_path}: the private key is encrypted; give an unencrypted "
        "PKCS#8 key, for example from `openssl pkey -in KEY.pem -out PLAIN.pem`\n"
    )
    assert not os.path.exists(registry_file + ".sig")


def test_sign_rejects_public_key_as_private_key(capsys, keys, registry_file):
    _, public_path, _ = keys
    code, _, err = run(capsys, "registry", "sign", "--key", public_path, registry_file)
    assert code == 2
    assert err == (
        f"error: --key {public_path}: not a PEM private key; create one with "
        "`openssl genpkey -algorithm ed25519 -out KEY.pem`\n"
    )


def test_sign_rejects_missing_file(capsys, keys, tmp_path):
    private_path, _, _ = keys
    missing = os.fspath(tmp_path / "missing.yaml")
    code, out, err = run(capsys, "registry", "sign", "--key", private_path, missing)
    assert code == 2
    assert out == ""
    assert err == f"error: {missing}: file not found; check the path\n"


def test_sign_needs_key_flag(capsys, registry_file):
    with pytest.raises(SystemExit) as exit_info:
        main(["registry", "sign", registry_file])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --key" in capsys.readouterr().err


def test_loader_parses_the_bytes_it_verified(monkeypatch, keys, registry_file):
    private_path, public_path, _ = keys
    signing.sign_file(signing.load_private_key(private_path), registry_file)
    original_verify = signing.verify

    def verify_then_swap(key, path, data):
        problem = original_verify(key, path, data)
        # Replace the file between the check and the parse, as an attacker would.
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(REGISTRY.replace("2027-12-31", "2099-12-31"))
        return problem

    monkeypatch.setattr(signing, "verify", verify_then_swap)
    registry = signing.signed_registry_loader(public_path)([registry_file])
    assert registry.licenses["prod-main"].expires.year == 2028  # 2027-12-31 + 1 day


def test_loader_reports_signature_invalid_reason(keys, registry_file):
    _, public_path, _ = keys
    loader = signing.signed_registry_loader(public_path)
    assert loader.signature_valid is None
    with pytest.raises(RegistryError) as error:
        loader([registry_file])
    assert error.value.reason == "signature_invalid"
    assert loader.signature_valid is False


def scrape(refresher: Refresher) -> str:
    registry = CollectorRegistry()
    registry.register(LicenseCollector(refresher, clock=lambda: 1780272000.0))
    return generate_latest(registry).decode()


def test_refresh_keeps_last_good_registry_when_tampered(caplog, keys, registry_file):
    private_path, public_path, _ = keys
    private_key = signing.load_private_key(private_path)
    signing.sign_file(private_key, registry_file)
    refresher = Refresher(
        [registry_file], [], signing.signed_registry_loader(public_path)
    )
    refresher.refresh()
    good = refresher.snapshot.registry
    assert good is not None
    assert "dify_license_registry_signature_valid 1.0" in scrape(refresher)

    with open(registry_file, "w", encoding="utf-8") as handle:
        handle.write(REGISTRY.replace("owner: Jane Roe", "owner: Mallory"))
    with caplog.at_level(logging.WARNING):
        refresher.refresh()
    assert refresher.snapshot.registry is good
    assert refresher.health.registry_valid is False
    assert refresher.health.errors_total[("registry", "signature_invalid")] == 1
    text = scrape(refresher)
    assert "dify_license_registry_signature_valid 0.0" in text
    assert "dify_license_exporter_registry_valid 0.0" in text
    assert (
        'dify_license_exporter_refresh_errors_total{reason="signature_invalid",'
        'source="registry"} 1.0' in text
    )
    warnings = [r for r in caplog.records if r.getMessage() == "refresh error"]
    assert len(warnings) == 1
    assert warnings[0].reason == "signature_invalid"
    assert "does not match" in warnings[0].error

    signing.sign_file(private_key, registry_file)
    refresher.refresh()
    assert refresher.snapshot.registry is not good
    assert refresher.snapshot.registry.instances[0].owner == "Mallory"
    assert "dify_license_registry_signature_valid 1.0" in scrape(refresher)


def test_signature_gauge_has_no_sample_without_key(registry_file):
    refresher = Refresher([registry_file], [])
    refresher.refresh()
    text = scrape(refresher)
    assert "# TYPE dify_license_registry_signature_valid gauge" in text
    assert "\ndify_license_registry_signature_valid " not in text
