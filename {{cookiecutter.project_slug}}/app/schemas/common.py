"""Field types shared by the request models: they refuse what the databases would choke on."""

from typing import Annotated

from email_validator import SPECIAL_USE_DOMAIN_NAMES
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

# The schema tells what each field takes, so that clients (and schema-driven tests) know. NUL is
# refused by a pattern, then; a lone surrogate, no Unicode text at all and not to be spelled in a
# pattern every regex dialect reads, by StorableText alone.
NO_NUL = r"^[^\x00]*$"
# Exactly what str.strip() removes, spelled out: `\s` means a different set in each of ECMA-262
# (the schema's dialect), Python's re and Rust's regex (pydantic's).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# No NUL, and something besides whitespace.
NOT_BLANK = rf"^[^\x00]*[^\x00{_SPACE}][^\x00]*$"
# Names and titles are trimmed once they have passed: the lengths documented and checked are
# those of the text as sent, and trimming can only shorten it.
TRIM = AfterValidator(str.strip)


def _name(max_length: int) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=max_length, pattern=NOT_BLANK)


TenantName = Annotated[str, _name(100), TRIM, StorableText]
FullName = Annotated[str, _name(200), TRIM, StorableText]
Title = Annotated[str, _name(200), TRIM, StorableText]
Description = Annotated[str, Field(max_length=10_000, pattern=NO_NUL), StorableText]
MAX_PASSWORD_LENGTH = 128
# email-validator refuses an address longer than RFC 5321's 254 octets (the column holds 320)...
MAX_EMAIL_LENGTH = 254
# ...and one whose domain has no dot or is special-use (.test, .local, ...: no mail reaches it),
# both of which `format: email` allows: documented as a `not` pattern, in any letter case
# ([tT][eE][sS][tT]: ECMA-262 patterns have no inline flags).
_SPECIAL_USE = "|".join(
    "".join(f"[{c}{c.upper()}]" for c in name) for name in SPECIAL_USE_DOMAIN_NAMES
)
_NO_MAIL_DOMAIN = rf"(@[^@.]*|\.({_SPECIAL_USE}))$"

# Stored and compared in lower case: one mailbox, one account, however it is typed.
Email = Annotated[
    EmailStr,
    Field(max_length=MAX_EMAIL_LENGTH, json_schema_extra={"not": {"pattern": _NO_MAIL_DOMAIN}}),
    AfterValidator(str.lower),
]
# Long enough for passphrases, short enough that hashing cannot be used to burn CPU.
Password = Annotated[
    str, Field(min_length=8, max_length=MAX_PASSWORD_LENGTH, pattern=NO_NUL), StorableText
]

_EMAIL = TypeAdapter(Email)


def normalize_email(value: str) -> str | None:
    """The form sign-up stores an address in (Unicode-normalised, IDNA domains in Unicode,
    "Name <addr>" reduced to addr, lower case), by the very same type; None when it is none."""
    try:
        return _EMAIL.validate_python(value)
    except ValidationError:
        return None
