from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, WithJsonSchema

from app.schemas.common import Email, Password


# Documented with the sign-up's own types, so that clients and schema-driven tests know what can
# succeed, but not validated against them (a plain str each): what no account can have is just a
# wrong credential, and gets the login's one 401 for every failure.
class LoginForm(BaseModel):
    """The OAuth2 password grant's form (RFC 6749, section 4.3.2); `username` is the e-mail
    address. Other OAuth2 fields (scope, client_id, ...) are ignored."""

    # A form has no null, and an empty field counts as one not sent: "" is as good as "password".
    grant_type: Annotated[str, Field(pattern="^(password)?$")] = ""
    username: Annotated[str, WithJsonSchema(TypeAdapter(Email).json_schema())]
    password: Annotated[
        str, WithJsonSchema(TypeAdapter(Password).json_schema() | {"format": "password"})
    ]


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int  # seconds
