from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core import security


def test_passwords_are_hashed_with_argon2_and_verified() -> None:
    hashed = security.hash_password("s3cret-passphrase")
    assert hashed.startswith("$argon2id$")
    assert "s3cret" not in hashed
    assert security.verify_password("s3cret-passphrase", hashed) == (True, None)
    assert security.verify_password("wrong", hashed) == (False, None)


def test_unknown_user_still_costs_a_verification() -> None:
    assert security.verify_password("anything", None) == (False, None)


def test_hashes_with_outdated_parameters_are_upgraded_on_login() -> None:
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),)).hash("passphrase")
    valid, upgraded = security.verify_password("passphrase", weak)
    assert valid
    assert upgraded is not None
    assert upgraded != weak
    assert security.verify_password("passphrase", upgraded) == (True, None)
