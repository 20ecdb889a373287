"""Encryption of stored secrets (SQL connection DSNs) with Fernet.

The key is FIELD_ENCRYPTION_KEY, or one derived from SECRET_KEY (HKDF-SHA256) when unset, so a
database dump alone never reveals a DSN.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


def _fernet() -> Fernet:
    key = settings.FIELD_ENCRYPTION_KEY
    if not key:
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"mlplatform-field-encryption", info=b"dsn").derive(
            settings.SECRET_KEY.encode()
        )
        key = base64.urlsafe_b64encode(raw).decode()
    return Fernet(key)


def encrypt(text: str) -> str:
    return _fernet().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("The stored secret cannot be decrypted (was the encryption key changed?).") from None
