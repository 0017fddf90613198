"""The deployable stack: Dockerfile, compose, Prometheus rules and config, Grafana dashboard.

Docker cannot run here, so the files are parsed and checked for what each tool
requires; the PromQL of the rules and of the dashboard is checked by
``promtool`` when it is installed, and every metric it names must be one that
a running service really exposes on /metrics.
"""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from tests.ops.ops_harness import get, parse_metrics, running_app
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "market-data.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"

# Series Prometheus itself adds to every target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (functions, labels, keywords and numbers removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


def test_promql_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, instance) (rate(foo_bucket{job="x", a=~"$s"}[5m])))'
        " > 500 and on (instance) bar_total offset 5m"
    )
    assert promql_metric_names(expr) == {"foo_bucket", "bar_total"}


# ------------------------------------------------------------------- metric names


async def test_rules_and_dashboard_use_only_exposed_metrics(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, ("BTCUSDT", "ETHUSDT")) as run:
        service = run.app.service
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()), what="live"
        )
        answer = await get(run.base_url, "/metrics")
    _, exposed = parse_metrics(answer.body)
    compatible = {
        "websocket_connected", "websocket_disconnects_total", "messages_processed_total",
        "messages_error_total", "processing_latency_microseconds_bucket",
        "orderbook_updates_total", "sequence_errors_total", "trades_processed_total",
        "redis_publishes_total", "redis_errors_total",
    }  # fmt: skip
    assert compatible <= exposed, compatible - exposed
    available = exposed | PROMETHEUS_SYNTHETIC
    for rule in alert_rules():
        unknown = promql_metric_names(rule["expr"]) - available
        assert not unknown, f"{rule['alert']} uses {unknown}"
    for expr in dashboard_exprs():
        names = promql_metric_names(expr)
        assert names, expr
        assert names <= available, f"{expr} uses {names - available}"
    template = dashboard()["templating"]["list"][0]
    metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", template["definition"]).groups()
    assert metric in exposed and label == "symbol"


# ------------------------------------------------------------------------ alerts


def test_alert_rules_are_complete() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    runbook = RUNBOOK.read_text()
    headings = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["for"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"]
        assert annotations["runbook"] == f"docs/RUNBOOK.md#{rule['alert'].lower()}"
        assert rule["alert"] in headings, f"{rule['alert']} has no section in the runbook"
    exprs = " ".join(rule["expr"] for rule in rules)
    for required in (
        "histogram_quantile(0.99",
        "orderbook_updates_total",
        "sequence_errors_total",
        "redis_errors_total",
        "service_ready",
    ):
        assert required in exprs, required


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):  # .ci/run installs it: never skip there
            pytest.fail("promtool is not installed (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return path


def test_promtool_accepts_rules_and_config() -> None:
    tool = promtool()
    rules = subprocess.run(
        [tool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=30
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in rules.stdout
    config = subprocess.run(
        [tool, "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=30
    )
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    tool = promtool()
    exprs = [expr.replace("$symbol", ".*") for expr in dashboard_exprs()]
    records = [{"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)]
    rules = {"groups": [{"name": "dashboard", "rules": records}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = subprocess.run(
        [tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --------------------------------------------------------------------- Grafana


def test_dashboard_has_what_grafana_requires() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    datasource_uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    titles = " ".join(panel["title"].lower() for panel in panels)
    for topic in ("throughput", "latency", "book states", "resyncs", "redis", "queue depth"):
        assert topic in titles, topic
    for panel in panels:
        assert panel["type"] in ("timeseries", "stat", "state-timeline")
        assert panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h"))
        assert grid["x"] + grid["w"] <= 24 and grid["w"] > 0 and grid["h"] > 0
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource_uid}
        assert panel["targets"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == datasource_uid
    # No two panels overlap on the 24-column grid.
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & area, panel["title"]
        cells |= area


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "market-data.yml").read_text()
    )
    dashboards_path = providers["providers"][0]["options"]["path"]
    host_dir = next(host for host, container in mounts.items() if container == dashboards_path)
    assert (DEPLOY / host_dir / DASHBOARD.name).is_file()
    provisioning = next(h for h, c in mounts.items() if c == "/etc/grafana/provisioning")
    assert (DEPLOY / provisioning / "datasources" / DATASOURCES.name).is_file()


# ---------------------------------------------------------------- Docker, compose


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2 and all(s.startswith("python:3.11-slim") for s in stages)
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    keywords = {keyword: rest for keyword, rest in final}
    assert "COPY" in keywords and any(
        k == "COPY" and rest.startswith("--from=") for k, rest in final
    )
    user = keywords["USER"].split(":")[0]
    assert user not in ("root", "0")
    healthcheck = json.loads(keywords["HEALTHCHECK"].split("CMD", 1)[1])
    assert healthcheck[:2] == ["market-data", "health"]
    # Liveness only: a Redis outage makes the service not ready, not in need of a restart.
    assert "--liveness" in healthcheck
    assert healthcheck[healthcheck.index("--config") + 1] == "/etc/market-data/config.yaml"
    assert json.loads(keywords["ENTRYPOINT"]) == ["market-data"]
    assert json.loads(keywords["CMD"])[0] == "run"
    assert "9090" in keywords["EXPOSE"]
    # Every file the build copies from the context exists.
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from="):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source


def test_compose_wires_service_redis_prometheus_and_grafana() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"market-data", "redis", "prometheus", "grafana"} <= set(services)
    app = services["market-data"]
    assert (DEPLOY / app["build"]["context"] / app["build"]["dockerfile"]).is_file()
    assert app["environment"]["MARKET_DATA_REDIS_URL"].startswith("redis://redis:")
    assert app["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in services["redis"]
    port = int(app["environment"]["MARKET_DATA_HEALTH_PORT"])
    assert f"{port}:{port}" in app["ports"]
    # Docker's default /dev/shm (64 MiB) cannot hold the default ring (64 MiB) plus more.
    assert app["shm_size"].endswith(("m", "g"))
    for volume in services["prometheus"]["volumes"]:
        assert (DEPLOY / volume.split(":")[0]).is_file(), volume
    scrape = yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"][0]
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"][0]["targets"] == [f"market-data:{port}"]
    assert scrape["job_name"] == "market-data"  # the alerts select up{job="market-data"}


def test_the_ha_compose_file_pairs_two_instances_in_one_group() -> None:
    base = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    layered = yaml.safe_load((DEPLOY / "docker-compose.ha.yml").read_text())["services"]
    a = {**base["market-data"]["environment"], **layered["market-data"]["environment"]}
    b = layered["market-data-b"]["environment"]
    assert a["MARKET_DATA_HA_GROUP"] == b["MARKET_DATA_HA_GROUP"] != ""
    for key in ("MARKET_DATA_SYMBOLS", "MARKET_DATA_REDIS_URL", "MARKET_DATA_HA_LEASE_MS"):
        assert a[key] == b[key], key
    assert layered["market-data-b"]["ports"] != base["market-data"]["ports"]
    assert layered["market-data-b"]["image"] == base["market-data"]["image"]
