"""Field types shared by the request models: they refuse what the databases would choke on."""

from typing import Annotated

from pydantic import (
    AfterValidator,
    EmailStr,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)


def is_storable(value: str) -> bool:
    """PostgreSQL rejects NUL in text, and neither driver can encode a lone surrogate
    ("\\ud800" is valid JSON): such strings must be refused before they reach a query."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_text(value: str) -> str:
    if not is_storable(value):
        raise ValueError("must be valid Unicode text without NUL characters")
    return value


StorableText = AfterValidator(_storable_text)


def _trimmed(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


TenantName = Annotated[str, _trimmed(100), StorableText]
FullName = Annotated[str, _trimmed(200), StorableText]
Title = Annotated[str, _trimmed(200), StorableText]
Description = Annotated[str, StringConstraints(max_length=10_000), StorableText]
MAX_EMAIL_LENGTH = 320
MAX_PASSWORD_LENGTH = 128

# Stored and compared in lower case: one mailbox, one account, however it is typed.
Email = Annotated[EmailStr, Field(max_length=MAX_EMAIL_LENGTH), AfterValidator(str.lower)]
# Long enough for passphrases, short enough that hashing cannot be used to burn CPU.
Password = Annotated[str, Field(min_length=8, max_length=MAX_PASSWORD_LENGTH), StorableText]

_EMAIL = TypeAdapter(Email)


def normalize_email(value: str) -> str | None:
    """The form sign-up stores an address in (Unicode-normalised, IDNA domains in Unicode,
    "Name <addr>" reduced to addr, lower case), by the very same type; None when it is none."""
    try:
        return _EMAIL.validate_python(value)
    except ValidationError:
        return None
