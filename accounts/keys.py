"""High-entropy keys and their fast hashes, shared by user tokens and deployment API keys."""

from __future__ import annotations

import hashlib
import secrets


def new_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
