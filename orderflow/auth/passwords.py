"""Password hashing (argon2id) and the strength rule for new passwords."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from orderflow.errors import Unprocessable

MIN_LENGTH = 8
MAX_LENGTH = 128

_hasher = PasswordHasher()
#: Verified against when the e-mail is unknown, so a login takes as long either way.
_DUMMY_HASH = _hasher.hash("orderflow-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def check_password_strength(password: str, *, field: str = "password") -> None:
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if password.isalpha() or password.isdigit():
        problems.append("both letters and digits or symbols")
    if problems:
        raise Unprocessable(
            "password is too weak: it needs " + ", ".join(problems),
            errors=[{"field": field, "message": "needs " + ", ".join(problems)}],
        )
