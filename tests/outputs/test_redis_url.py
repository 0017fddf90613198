"""Redis URL parsing and redaction: the password must never leak into text."""

import ssl

import pytest

from market_data.outputs.redis_url import RedisUrlError, parse_redis_url, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@host:6380/1", "redis://:***@host:6380/1"),
        ("redis://alice:s3cret@host/0", "redis://alice:***@host/0"),
        ("rediss://alice:s3cret@host:6390/0?ssl_cert_reqs=none", "rediss://alice:***@host:6390/0?ssl_cert_reqs=none"),
        ("redis://alice@host/0", "redis://alice@host/0"),
        ("redis://:p%40ss:w@rd@host/0", "redis://:***@host/0"),
    ],
)  # fmt: skip
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("secret", ["s3cret", "p@ss:w/rd", "x" * 40])
def test_redacted_url_never_contains_the_password(secret: str) -> None:
    for url in (f"redis://:{secret}@h:1/0", f"redis://u:{secret}@h:1/0"):
        assert secret not in redact_url(url)


def test_unparseable_url_is_hidden_entirely() -> None:
    assert redact_url("redis://:secret@[::1/0") == "<unparseable redis url>"


def test_parse_plain_url_with_defaults() -> None:
    endpoint = parse_redis_url("redis://localhost")
    assert (endpoint.host, endpoint.port, endpoint.db) == ("localhost", 6379, 0)
    assert endpoint.password is None and endpoint.username is None
    assert endpoint.tls is False and endpoint.ssl_context() is None


def test_parse_credentials_database_and_percent_decoding() -> None:
    endpoint = parse_redis_url("redis://feeder:p%40ss%3Aword@10.0.0.5:6380/4")
    assert (endpoint.host, endpoint.port, endpoint.db) == ("10.0.0.5", 6380, 4)
    assert endpoint.username == "feeder"
    assert endpoint.password == "p@ss:word"
    assert "p@ss:word" not in repr(endpoint)


def test_password_only_url() -> None:
    endpoint = parse_redis_url("redis://:only-password@h:1/0")
    assert endpoint.username is None
    assert endpoint.password == "only-password"


def test_rediss_builds_a_verifying_tls_context() -> None:
    context = parse_redis_url("rediss://h:6380/0").ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_rediss_without_verification() -> None:
    context = parse_redis_url("rediss://h:6380/0?ssl_cert_reqs=none").ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://:hidden-pw@h:1/0", "scheme"),
        ("redis://:hidden-pw@h:notaport/0", "port"),
        ("redis://:hidden-pw@h:1/zero", "database"),
        ("redis://:hidden-pw@/0", "host"),
        ("rediss://:hidden-pw@h:1/0?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
    ],
)
def test_bad_urls_are_rejected_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(RedisUrlError, match=problem) as caught:
        parse_redis_url(url)
    assert "hidden-pw" not in str(caught.value)
    assert caught.value.__cause__ is None or "hidden-pw" not in str(caught.value.__cause__)
