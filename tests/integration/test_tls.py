"""wss:// and https:// to the exchange: verified certificates, both ways."""

import ssl
from pathlib import Path

import trustme

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig
from tests.integration.service_harness import book_matches_truth, running_service
from tests.support import wait_for


def tls_sim(tmp_path: Path) -> tuple[SimConfig, str]:
    """A simulator serving TLS with a certificate from a throwaway CA, and that CA's file."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return SimConfig(symbols=["BTCUSDT"], diff_rate_hz=30, ssl_context=server), str(ca_file)


async def test_wss_feed_and_https_snapshots(redis_server: EmbeddedRedis, tmp_path: Path) -> None:
    sim_config, ca_file = tls_sim(tmp_path)
    async with running_service(
        redis_server.url, ("BTCUSDT",), sim_config=sim_config, exchange_ca_file=ca_file
    ) as (app, sim, received):
        assert sim.ws_base_url.startswith("wss://") and sim.rest_base_url.startswith("https://")
        service = app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        await wait_for(lambda: len(received.live_books("BTCUSDT")) > 5, what="books")
    problems = [p for b in received.live_books("BTCUSDT") if (p := book_matches_truth(sim, b))]
    assert not problems


async def test_an_untrusted_certificate_is_refused(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    sim_config, _ = tls_sim(tmp_path)
    async with running_service(redis_server.url, ("BTCUSDT",), sim_config=sim_config) as (
        app,
        sim,
        received,
    ):
        service = app.service
        await wait_for(
            lambda: any("certificate" in c.last_disconnect_reason for c in service.connections),
            what="a refused handshake",
        )
        assert all(c.connects == 0 for c in service.connections)
        assert service.symbols["BTCUSDT"].state is BookState.WAITING
    assert received.live_books("BTCUSDT") == []
