"""Password hashing (argon2id) and PIN digests (HMAC-SHA256 keyed with the deployment secret).

A PIN is how a caller whose number we do not know identifies their account, so PINs must be unique
and found by value: a keyed digest allows both, while the PIN itself is never stored or shown.
"""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 12
PASSWORD_MIN_LENGTH = 4

# argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): about 20 ms of CPU per
# sign-in, where the library's default (64 MiB, 3 passes) costs ten times that and lets a burst of
# sign-ins starve every other request. Hashes made with other parameters still verify: each hash
# carries its own.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class CredentialError(ValueError):
    """A password or PIN does not meet the rules."""


def hash_password(password: str) -> str:
    if len(password) < PASSWORD_MIN_LENGTH:
        raise CredentialError(f"a password needs at least {PASSWORD_MIN_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_pin(pin: str) -> str:
    if not (pin.isascii() and pin.isdigit()) or not PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS:
        raise CredentialError(f"a PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits")
    return pin


def pin_digest(secret: bytes, pin: str) -> str:
    return hmac.new(secret, check_pin(pin).encode(), hashlib.sha256).hexdigest()
