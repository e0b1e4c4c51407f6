"""Secrets sealed for one requester: a value a provider returns once (a new random password)
that only the person who asked for it may read, and only once.

The service makes a key pair when the request is made and hands the private half to the
requester in its answer, keeping only the public half on the action. The worker, in any process,
seals the secret to that public half (X25519, HKDF-SHA256, ChaCha20-Poly1305, bound to the action
id); the database then holds only a ciphertext nobody can open without the requester's key, and
that ciphertext is removed when the requester opens it.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from clampdown.errors import InvalidInput

_VERSION = "v1."
# A token `clampdown login --browser` receives through the browser: sealed under this context only.
CLI_LOGIN_CONTEXT = "clampdown-cli-login"


@dataclass(frozen=True)
class SealingKey:
    """A one-time key pair: `private` for the requester only, `public` stored on the action."""

    private: str
    public: str

    def __repr__(self) -> str:  # never the private half in a log line or a traceback
        return f"SealingKey(public={self.public!r})"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_sealing_key() -> SealingKey:
    """A fresh key pair for one request."""
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return SealingKey(_b64(raw), _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)))


def _key(shared: bytes, ephemeral: bytes, recipient: bytes, context: str) -> bytes:
    info = b"clampdown-sealed-secret\x00" + context.encode() + b"\x00" + ephemeral + recipient
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def seal(public_key: str, secret: str, context: str) -> str:
    """`secret` readable only with the private half of `public_key`, and only under `context`."""
    recipient = X25519PublicKey.from_public_bytes(_unb64(public_key))
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    recipient_raw = recipient.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw, context)
    nonce = os.urandom(12)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, secret.encode(), context.encode())
    return _VERSION + _b64(ephemeral_raw + nonce + sealed)


def open_sealed(private_key: str, sealed: str, context: str) -> str:
    """The secret in `sealed`; InvalidInput naming secret_key if the key is not the one it was
    sealed for (or is malformed)."""
    try:
        private = X25519PrivateKey.from_private_bytes(_unb64(private_key))
        raw = _unb64(sealed.removeprefix(_VERSION))
        ephemeral_raw, nonce, box = raw[:32], raw[32:44], raw[44:]
        recipient_raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        key = _key(shared, ephemeral_raw, recipient_raw, context)
        return ChaCha20Poly1305(key).decrypt(nonce, box, context.encode()).decode()
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("secret_key: not the key this action's secret was sealed for") from None
