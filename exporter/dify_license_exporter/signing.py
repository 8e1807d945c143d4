"""Detached Ed25519 signatures of registry files.

`FILE.sig` contains the base64 text of the Ed25519 signature over the exact bytes of
FILE. With a public key, every registry file is read once, verified, and the same
bytes are parsed, so a file swapped between the check and the parse is never used.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from . import yamlfile
from .registry import Registry, RegistryError, RegistryProblem, load_registry

SIGNATURE_SUFFIX = ".sig"
SIGNATURE_BYTES = 64
# A base64 signature is 88 characters; anything much larger is not a signature.
MAX_SIGNATURE_FILE_BYTES = 1024
MAX_KEY_FILE_BYTES = 64 * 1024


class SigningError(Exception):
    """A key file or a file to sign is unusable; the message names it and the fix."""


def signature_path(path: str) -> str:
    return path + SIGNATURE_SUFFIX


def load_public_key(path: str) -> Ed25519PublicKey:
    """Read an Ed25519 public key in PEM (SubjectPublicKeyInfo); raises SigningError."""
    data = _read_key_file(path, "--registry-public-key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(
            f"--registry-public-key {path}: not a PEM public key; export it with "
            "`openssl pkey -in KEY.pem -pubout -out PUBLIC.pem`"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningError(
            f"--registry-public-key {path}: the key is not an Ed25519 key; "
            "registry signatures use Ed25519"
        )
    return key


def load_private_key(path: str) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key in PEM; raises SigningError."""
    data = _read_key_file(path, "--key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SigningError(
            f"--key {path}: the private key is encrypted; give an unencrypted "
            "PKCS#8 key, for example from `openssl pkey -in KEY.pem -out PLAIN.pem`"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(
            f"--key {path}: not a PEM private key; create one with "
            "`openssl genpkey -algorithm ed25519 -out KEY.pem`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(
            f"--key {path}: the key is not an Ed25519 key; create one with "
            "`openssl genpkey -algorithm ed25519 -out KEY.pem`"
        )
    return key


def _read_key_file(path: str, flag: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise SigningError(f"{flag} {path}: file not found; check the path") from None
    except OSError as exc:
        raise SigningError(
            f"{flag} {path}: cannot read the file: {exc.strerror}; check permissions"
        ) from None


def sign_file(key: Ed25519PrivateKey, path: str) -> str:
    """Sign the exact bytes of `path` and write `path.sig`; return the .sig path.

    The signature file is replaced atomically, so a reader never sees half of it.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise SigningError(f"{path}: file not found; check the path") from None
    except OSError as exc:
        raise SigningError(
            f"{path}: cannot read the file: {exc.strerror}; check permissions"
        ) from None
    text = base64.b64encode(key.sign(data)).decode("ascii") + "\n"
    target = signature_path(path)
    folder = os.path.dirname(os.path.abspath(target))
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=".", suffix=SIGNATURE_SUFFIX, dir=folder
        )
        try:
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise SigningError(
            f"{target}: cannot write the signature: {exc.strerror}; check that the "
            "folder is writable"
        ) from None
    return target


def verify(key: Ed25519PublicKey, path: str, data: bytes) -> RegistryProblem | None:
    """Check `data` (the bytes read from `path`) against `path.sig`.

    Returns None when the signature is valid, else the problem naming the file and
    the fix.
    """
    target = signature_path(path)
    sign_hint = (
        f"sign it with `dify-license-exporter registry sign --key KEY.pem {path}`"
    )
    try:
        with open(target, "rb") as handle:
            encoded = handle.read(MAX_SIGNATURE_FILE_BYTES + 1)
    except FileNotFoundError:
        return RegistryProblem(
            path, "", f"signature file {target} not found; {sign_hint}"
        )
    except OSError as exc:
        return RegistryProblem(
            path,
            "",
            f"cannot read the signature file {target}: {exc.strerror}; "
            "check permissions",
        )
    try:
        if len(encoded) > MAX_SIGNATURE_FILE_BYTES:
            raise ValueError("too large")
        signature = base64.b64decode(encoded.strip(), validate=True)
        if len(signature) != SIGNATURE_BYTES:
            raise ValueError("wrong length")
    except (ValueError, binascii.Error):
        return RegistryProblem(
            path,
            "",
            f"{target} is not a base64 Ed25519 signature; {sign_hint}",
        )
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return RegistryProblem(
            path,
            "",
            f"signature in {target} does not match: the file changed after it was "
            "signed, or it was signed with a key other than --registry-public-key; "
            "review the change and sign the file again",
        )
    return None


class SignedRegistryLoader:
    """Load registry files only when each one carries a valid signature.

    Called like `load_registry`. `signature_valid` is None before the first load,
    then True when every file of the latest load was read and verified, else False.
    """

    def __init__(self, key: Ed25519PublicKey):
        self.key = key
        self.signature_valid: bool | None = None

    def __call__(self, paths: Sequence[str]) -> Registry:
        paths = list(paths)
        verified: dict[str, bytes] = {}
        read_errors: dict[str, OSError] = {}
        problems: list[RegistryProblem] = []
        for path in paths:
            try:
                data = yamlfile.read_bytes(path)
            except OSError as exc:
                read_errors[path] = exc
                continue
            problem = verify(self.key, path, data)
            if problem is not None:
                problems.append(problem)
                continue
            verified[path] = data
        self.signature_valid = bool(paths) and not problems and not read_errors
        if problems:
            # Unverified bytes are never parsed: the YAML parser is attack surface.
            raise RegistryError(problems, "signature_invalid")

        def read_verified_text(path: str) -> str:
            # load_registry turns the stored read error into its usual problem.
            if path in read_errors:
                raise read_errors[path]
            return yamlfile.decode_text(verified[path])

        return load_registry(paths, read_text=read_verified_text)


def signed_registry_loader(public_key_path: str) -> SignedRegistryLoader:
    """Return a registry loader that requires valid signatures; raises SigningError."""
    return SignedRegistryLoader(load_public_key(public_key_path))
