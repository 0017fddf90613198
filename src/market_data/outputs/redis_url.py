"""Redis URLs: where to connect, with which credentials, and how to log them.

Accepts what redis-py's ``from_url`` accepts for TCP: ``redis://`` (plain) and
``rediss://`` (TLS), optional ``user:password@`` or ``:password@`` (percent
decoded), a ``/db`` path and the ``ssl_cert_reqs`` / ``ssl_ca_certs`` query
options. ``redis+cluster://`` and ``rediss+cluster://`` name a Redis Cluster by
any one of its nodes (the seed); the rest of the URL means the same. The
password is kept out of ``repr`` and ``redact_url`` replaces it, so a URL can be
logged or put in an error message safely.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from urllib.parse import parse_qs, unquote, urlsplit

from market_data.errors import MarketDataError

DEFAULT_PORT = 6379
_REDACTED = "***"
_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")
_CLUSTER_SUFFIX = "+cluster"


class RedisUrlError(MarketDataError):
    """A Redis URL that cannot be used; the message never contains the password."""


@dataclasses.dataclass(frozen=True, slots=True)
class RedisEndpoint:
    """A parsed Redis URL."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    tls: bool = False
    tls_verify: bool = True
    tls_ca_file: str | None = None
    #: The URL names a Redis Cluster node (``redis+cluster://``): route by hash slot.
    cluster: bool = False

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context for ``rediss://``, None for plain ``redis://``."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to log).

    Anything that does not parse as a URL is replaced entirely rather than
    risk printing a secret.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "<unparseable redis url>"
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        redacted_userinfo = f"{user}:{_REDACTED}" if has_password else user
        url = parts._replace(netloc=f"{redacted_userinfo}@{hostport}").geturl()
    return _PASSWORD_QUERY.sub(rf"\1{_REDACTED}", url)


_PASSWORD_QUERY = re.compile(r"([?&]password=)[^&#]*")


def parse_redis_url(url: str) -> RedisEndpoint:
    """Parse ``redis://[[user]:password@]host[:port][/db][?ssl_cert_reqs=none]``."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise RedisUrlError(f"invalid Redis URL {shown}: bad port") from None
    if parts.scheme not in _SCHEMES:
        raise RedisUrlError(
            f"invalid Redis URL {shown}: scheme must be redis://, rediss://, "
            "redis+cluster:// or rediss+cluster://"
        )
    if not parts.hostname:
        raise RedisUrlError(f"invalid Redis URL {shown}: no host")
    db_text = parts.path.lstrip("/")
    try:
        db = int(db_text) if db_text else 0
    except ValueError as exc:
        raise RedisUrlError(f"invalid Redis URL {shown}: database must be a number") from exc
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if "db" in query and not db_text:
        try:
            db = int(query["db"])
        except ValueError as exc:
            raise RedisUrlError(f"invalid Redis URL {shown}: database must be a number") from exc
    cluster = parts.scheme.endswith(_CLUSTER_SUFFIX)
    if cluster and db:
        raise RedisUrlError(f"invalid Redis URL {shown}: a Redis Cluster has database 0 only")
    cert_reqs = query.get("ssl_cert_reqs", "required").lower()
    if cert_reqs not in ("none", "optional", "required"):
        raise RedisUrlError(f"invalid Redis URL {shown}: ssl_cert_reqs={cert_reqs}")
    return RedisEndpoint(
        host=parts.hostname,
        port=port,
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme.startswith("rediss"),
        tls_verify=cert_reqs != "none",
        tls_ca_file=query.get("ssl_ca_certs"),
        cluster=cluster,
    )


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return urlsplit(url).scheme.endswith(_CLUSTER_SUFFIX)


def plain_url(url: str) -> str:
    """``url`` with ``+cluster`` taken out of its scheme: what redis-py's ``from_url`` reads."""
    scheme, sep, rest = url.partition("://")
    return scheme.removesuffix(_CLUSTER_SUFFIX) + sep + rest
