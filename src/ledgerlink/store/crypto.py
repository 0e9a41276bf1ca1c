"""Credentials are encrypted at rest with a key derived from LEDGERLINK_SECRET_KEY."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts JSON-able secrets (tokens, API keys) for storage; authenticated, so tampering is detected."""

    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(b"ledgerlink-credentials-v1:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(value, sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, Any]:
        if not token:
            return {}
        try:
            data: dict[str, Any] = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("stored credentials cannot be decrypted: was LEDGERLINK_SECRET_KEY changed?") from None
        return data
