import threading

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from app.core import security


async def test_passwords_are_hashed_with_argon2_and_verified() -> None:
    hashed = await security.hash_password("s3cret-passphrase")
    assert hashed.startswith("$argon2id$")
    assert "s3cret" not in hashed
    assert await security.verify_password("s3cret-passphrase", hashed) == (True, None)
    assert await security.verify_password("wrong", hashed) == (False, None)


async def test_an_unknown_user_still_costs_a_full_verification(
    hashing_threads: list[int],
) -> None:
    # Same work as a real login, so response time does not reveal which e-mails exist.
    assert await security.verify_password("anything", None) == (False, None)
    assert len(hashing_threads) == 1


async def test_hashing_runs_off_the_event_loop(hashing_threads: list[int]) -> None:
    await security.verify_password("anything", None)
    assert hashing_threads
    assert threading.get_ident() not in hashing_threads


async def test_hashes_with_outdated_parameters_are_upgraded() -> None:
    weak = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024),)).hash("passphrase")
    valid, upgraded = await security.verify_password("passphrase", weak)
    assert valid
    assert upgraded is not None
    assert upgraded != weak
    assert await security.verify_password("passphrase", upgraded) == (True, None)
