import dataclasses
from pathlib import Path

import pytest
import trustme
import yaml

from market_data.errors import ConfigError, MarketDataError
from market_data.ops.config import ENV_PREFIX, Config, load_config
from market_data.outputs.redis_url import redact_url

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.yaml"
KEYS = [f.name for f in dataclasses.fields(Config) if f.name != "source"]


@pytest.fixture(autouse=True)
def _run_in_an_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_config() looks for config files in the current directory: keep it empty."""
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path | None = None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return str(caught.value).splitlines()


# --- defaults and sources -----------------------------------------------------------------


def test_defaults() -> None:
    config = Config()
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    assert config.exchange_ws_url == "wss://fstream.binance.com"
    assert config.exchange_rest_url == "https://fapi.binance.com"
    assert config.redis_url == "redis://localhost:6379/0"
    assert (config.order_book_depth, config.health_port, config.shm_name) == (
        20,
        9090,
        "market_data",
    )
    assert (config.reconnect_delay_s, config.max_reconnect_delay_s) == (1.0, 60.0)
    assert config.connection_max_age_s == 23 * 3600
    assert config.shm_capacity_bytes == 64 * 2**20


def test_example_file_lists_every_key_with_its_default() -> None:
    document = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(document, dict)
    assert set(document) == set(KEYS)
    assert load_config(EXAMPLE, env={}) == Config()


def test_every_example_key_has_a_comment_line_above_it() -> None:
    lines = EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            assert lines[number - 1].startswith("# "), line


def test_without_a_file_the_defaults_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config == Config()
    assert config.source == "defaults"


def test_config_yaml_in_the_current_directory_wins_over_the_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "health_port: 1234\n", "config.example.yaml")
    assert load_config(env={}).health_port == 1234
    write(tmp_path, "health_port: 4321\n")
    config = load_config(env={})
    assert config.health_port == 4321
    assert config.source == "config.yaml"


def test_a_given_path_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: no such config file"):
        load_config(missing, env={})
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path, env={})


def test_config_error_is_a_market_data_error() -> None:
    assert issubclass(ConfigError, MarketDataError)


def test_file_values_are_read_and_normalised(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "symbols: [btcusdt, SolUsdt]\n"
        "exchange_ws_url: ws://127.0.0.1:9001/\n"
        "silence_timeout_s: 5\n"
        "cpu_affinity: [1, 0]\n"
        "use_split_routes: false\n",
    )
    config = load_config(path, env={})
    assert config.symbols == ("BTCUSDT", "SOLUSDT")
    assert config.exchange_ws_url == "ws://127.0.0.1:9001"
    assert config.silence_timeout_s == 5.0 and isinstance(config.silence_timeout_s, float)
    assert config.cpu_affinity == (1, 0)
    assert config.use_split_routes is False
    assert config.source == str(path)


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing yet\n"), env={}) == Config()


# --- environment overrides ----------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "health_port: 1000\nredis_url: redis://file:6379/0\n")
    env = {
        "MARKET_DATA_HEALTH_PORT": "9000",
        "MARKET_DATA_SYMBOLS": "btcusdt, ethusdt,,solusdt",
        "MARKET_DATA_USE_SPLIT_ROUTES": "No",
        "MARKET_DATA_EXCHANGE_WS_URL": "ws://127.0.0.1:9001",
        "MARKET_DATA_LOG_JSON": "1",
        "MARKET_DATA_SILENCE_TIMEOUT_S": "2.5",
        "MARKET_DATA_CPU_AFFINITY": "0,1",
        "MARKET_DATA_CONFIG": "ignored: not a key and not close to one",
        "HEALTH_PORT": "1",
    }
    config = load_config(path, env=env)
    assert config.health_port == 9000
    assert config.redis_url == "redis://file:6379/0"
    assert config.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert config.use_split_routes is False
    assert config.log_json is True
    assert config.silence_timeout_s == 2.5
    assert config.cpu_affinity == (0, 1)
    assert "MARKET_DATA_HEALTH_PORT" in config.source and str(path) in config.source


@pytest.mark.parametrize("key", KEYS)
def test_every_key_has_an_environment_override(key: str, tmp_path: Path) -> None:
    default = getattr(Config(), key)
    changed = {
        bool: lambda v: not v,
        int: lambda v: v * 2 if key != "health_port" else 9000,
        float: lambda v: v / 2,
        tuple: lambda v: ("SOLUSDT",) if key == "symbols" else (3,),
    }
    overrides = {
        "exchange_ws_url": "ws://localhost:1",
        "exchange_rest_url": "http://localhost:2",
        "redis_url": "rediss://redis.example:6380/1",
        "shm_name": "other",
        "depth_stream": "depth@0ms",
        "http_host": "127.0.0.1",
        "cors_allow_origin": "https://example.com",
        "snapshot_limit": 500,
        "partial_depth_levels": 10,
        "streams_per_connection": 100,
        "order_book_depth": 10,
        "connection_max_age_s": 3600.0,
        "rest_weight_share": 0.5,
        "unknown_symbols": "skip",
        "symbols_quote_asset": "USDC",
        "ha_group": "desk-a",
        "ui_token": "view-token-1",
        "recording_dir": "/var/lib/market-data/recording",
        "recording_rotate": "day",
        "history_priority": "background",
        "recording_max_age_days": 7.0,
        "recording_max_bytes": 10**9,
        "parquet_dir": "/var/lib/market-data/history",
        "questdb_url": "http::addr=questdb:9000;",
    }
    if key == "exchange_ca_file":
        pem = tmp_path / "ca.pem"
        trustme.CA().cert_pem.write_to_path(str(pem))
        overrides[key] = str(pem)
    value = overrides[key] if key in overrides else changed[type(default)](default)
    if isinstance(value, tuple):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = str(value)
    # Unrouted streams exist only on stand-ins now (see the test below): point at one.
    file_text = "exchange_ws_url: ws://localhost:1\n" if key == "use_split_routes" else ""
    config = load_config(write(tmp_path, file_text), env={ENV_PREFIX + key.upper(): text})
    assert value != default
    assert getattr(config, key) == value


def test_ui_token_is_checked_and_never_printed() -> None:
    with pytest.raises(ConfigError, match="ui_token: must be empty"):
        Config(ui_token="short")
    config = Config(ui_token="view-token-1")
    assert config.describe()["ui_token"] == "***"
    assert "view-token-1" not in repr(config)


# --- validation messages ------------------------------------------------------------------


def test_out_of_range_port_names_file_key_and_range(tmp_path: Path) -> None:
    path = write(tmp_path, "health_port: 70000\n")
    assert problems_of(path) == [f"{path}: health_port: 70000 is out of range 0..65535"]


def test_bad_symbol_from_the_environment_names_the_variable() -> None:
    problems = problems_of(env={"MARKET_DATA_SYMBOLS": "BTCUSDT,BTC-USDT"})
    assert len(problems) == 1
    assert problems[0].startswith('MARKET_DATA_SYMBOLS: "BTC-USDT" is not a valid symbol')


def test_unknown_key_suggests_the_closest_one(tmp_path: Path) -> None:
    path = write(tmp_path, "redis_ur: redis://x:1/0\n")
    assert problems_of(path) == [f'{path}: unknown key "redis_ur" (did you mean "redis_url"?)']


def test_misspelt_environment_variable_is_reported() -> None:
    assert problems_of(env={"MARKET_DATA_REDIS_UR": "redis://x"}) == [
        "MARKET_DATA_REDIS_UR: unknown setting (did you mean MARKET_DATA_REDIS_URL?)"
    ]


def test_wrong_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "order_book_depth: abc\nshm_enabled: 1\nsymbols: BTCUSDT\nredis_url: 6379\n"
        "silence_timeout_s: .nan\ncpu_affinity: [0, x]\n",
    )
    assert problems_of(path) == [
        f'{path}: order_book_depth: expected an integer, got "abc"',
        f"{path}: shm_enabled: expected true or false, got 1",
        f'{path}: symbols: expected a list of symbols (or the word all), got "BTCUSDT"',
        f"{path}: redis_url: expected a string, got 6379",
        f"{path}: silence_timeout_s: expected a number, got nan",
        f'{path}: cpu_affinity: expected an integer, got "x"',
    ]


def test_wrong_types_from_the_environment() -> None:
    env = {
        "MARKET_DATA_ORDER_BOOK_DEPTH": "abc",
        "MARKET_DATA_LOG_JSON": "maybe",
        "MARKET_DATA_READY_MAX_BOOK_AGE_S": "inf",
    }
    assert problems_of(env=env) == [
        'MARKET_DATA_LOG_JSON: expected true/false/1/0/yes/no, got "maybe"',
        'MARKET_DATA_ORDER_BOOK_DEPTH: expected an integer, got "abc"',
        'MARKET_DATA_READY_MAX_BOOK_AGE_S: expected a number, got "inf"',
    ]


def test_yaml_booleans_in_a_symbol_list_get_a_hint(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "symbols: [BTCUSDT, NO]\n"))
    assert "got false" in problem and "quote" in problem


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("exchange_ws_url", "https://fstream.binance.com", 'scheme "https", expected ws or wss'),
        ("exchange_rest_url", "wss://fapi.binance.com", 'scheme "wss", expected http or https'),
        ("redis_url", "http://localhost:6379", "expected redis or rediss"),
        ("redis_url", "unix:///tmp/redis.sock", 'scheme "unix", expected redis or rediss'),
        ("redis_url", "redis://:6379", "names no host"),
        ("redis_url", "redis://localhost:99999/0", "is not a valid URL"),
        ("redis_url", "redis://localhost:6379/abc", "database must be a number"),
        ("redis_url", "redis+cluster://localhost:6379/1", "has database 0 only"),
        ("order_book_depth", "0", "0 is out of range 1..1000"),
        ("order_book_depth", "1001", "1001 is out of range 1..1000"),
        ("health_port", "-1", "-1 is out of range 0..65535"),
        ("shm_name", "a/b", "is not a valid shared-memory name"),
        ("shm_name", "..", "is not a valid shared-memory name"),
        ("reconnect_delay_ms", "0", "0 must be at least 1"),
        ("depth_stream", "depth@1s", '"depth@1s" is not one of depth, depth@100ms'),
        ("streams_per_connection", "201", "201 is out of range 1..200"),
        ("snapshot_limit", "200", "200 is not one of 5, 10, 20, 50, 100, 500, 1000"),
        ("partial_depth_levels", "15", "15 is not one of 5, 10, 20"),
        ("silence_timeout_s", "0", "0.0 must be greater than 0"),
        ("connection_max_age_s", "86400", "86400.0 is out of range 1..86100"),
        ("http_host", "", '"" is not a host name or address'),
        ("cors_allow_origin", "example.com", "is not"),
        ("questdb_url", "http::bogus_key=1;password=hunter2;", "names no addr"),
        ("questdb_url", "http::addr;password=hunter2;", "names no addr"),
        ("cors_allow_origin", "https://example.com/path", "is not"),
        ("cpu_affinity", "1,1,-2", "core -2 must be at least 0"),
        ("symbols", "", "at least one symbol is required"),
        ("symbols", "btcusdt,BTCUSDT", '"BTCUSDT" is listed twice'),
        ("symbols", "B", '"B" is not a valid symbol'),
        ("shm_capacity_bytes", "100", "100 is out of range 4096..1099511627776"),
    ],
)
def test_invalid_values_are_explained(key: str, value: str, reason: str) -> None:
    variable = ENV_PREFIX + key.upper()
    problems = problems_of(env={variable: value})
    assert any(p.startswith(f"{variable}: ") and reason in p for p in problems), problems


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "symbols: [btcusdt, BTC-USDT, ETH/USDT, BTCUSDT]\n"
        "health_port: 70000\n"
        "redis_ur: x\n"
        "exchange_ws_url: http://x\n",
    )
    problems = problems_of(path, env={"MARKET_DATA_ORDER_BOOK_DEPTH": "abc"})
    assert len(problems) == 7, problems
    assert (
        problems[0] == f'{path}: symbols: "BTC-USDT" is not a valid symbol (2-20 letters or digits)'
    )
    assert problems[2] == f'{path}: symbols: "BTCUSDT" is listed twice'
    assert problems[-1] == 'MARKET_DATA_ORDER_BOOK_DEPTH: expected an integer, got "abc"'


def test_rules_between_keys_blame_the_source_that_set_them(tmp_path: Path) -> None:
    assert problems_of(env={"MARKET_DATA_RECONNECT_DELAY_MS": "90000"}) == [
        "MARKET_DATA_RECONNECT_DELAY_MS: max_reconnect_delay_ms (60000) is below "
        "reconnect_delay_ms (90000)"
    ]
    path = write(tmp_path, "max_levels_per_side: 10\n")
    assert problems_of(path) == [f"{path}: max_levels_per_side (10) is below order_book_depth (20)"]
    assert load_config(path, env={"MARKET_DATA_ORDER_BOOK_DEPTH": "10"}).max_levels_per_side == 10


def test_yaml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "health_port: 80\nsymbols: [BTCUSDT\nlog_json: true\n")
    (problem,) = problems_of(path)
    assert problem.startswith(f"{path}: YAML error: line 3, column")


def test_a_key_written_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "health_port: 80\nlog_json: true\nhealth_port: 81\n")
    assert problems_of(path) == [
        f'{path}: YAML error: line 3, column 1: key "health_port" is written twice'
    ]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}: expected a mapping of key: value at the top level"]


def test_non_string_keys_are_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "1: x\n")
    assert problems_of(path) == [f"{path}: unknown key 1"]


# --- the Config object --------------------------------------------------------------------


def test_direct_construction_validates_and_normalises() -> None:
    config = Config(symbols=["btcusdt"], cpu_affinity=[2], health_port=0)  # type: ignore[arg-type]
    assert config.symbols == ("BTCUSDT",)
    assert config.cpu_affinity == (2,)
    with pytest.raises(ConfigError) as caught:
        Config(health_port=70000, symbols=())
    assert str(caught.value).splitlines() == [
        "symbols: at least one symbol is required",
        "health_port: 70000 is out of range 0..65535",
    ]
    with pytest.raises(ConfigError, match="below reconnect_delay_ms"):
        Config(reconnect_delay_ms=5000, max_reconnect_delay_ms=4000)


def test_config_is_frozen_and_overrides_are_validated() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.health_port = 1  # type: ignore[misc]
    demo = config.with_overrides(exchange_ws_url="ws://127.0.0.1:9000/", health_port=0)
    assert demo.exchange_ws_url == "ws://127.0.0.1:9000"
    assert config.health_port == 9090
    with pytest.raises(ConfigError):
        config.with_overrides(exchange_ws_url="http://127.0.0.1:9000")


def test_describe_lists_every_key_and_hides_the_redis_password() -> None:
    config = Config(redis_url="redis://user:s3cret@redis.internal:6379/0")
    described = config.describe()
    assert list(described) == KEYS
    assert described["redis_url"] == "redis://user:***@redis.internal:6379/0"
    assert "s3cret" not in repr(described)
    assert described["symbols"] == ["BTCUSDT", "ETHUSDT"]


def test_repr_hides_the_redis_password_too() -> None:
    text = repr(Config(redis_url="redis://:s3cret@redis.internal:6379/0"))
    assert "s3cret" not in text
    assert "redis://:***@redis.internal:6379/0" in text and "health_port=9090" in text


@pytest.mark.parametrize("symbols", [("SOLUSDT",), ("ALL",)])
def test_describe_written_back_as_yaml_loads_to_the_same_config(
    tmp_path: Path, symbols: tuple[str, ...]
) -> None:
    config = Config(symbols=symbols, cpu_affinity=(1,), log_json=True, health_port=0)
    path = write(tmp_path, yaml.safe_dump(config.describe()))
    assert load_config(path, env={}) == config


def test_describe_spells_all_symbols_as_a_config_does() -> None:
    assert Config(symbols=("ALL",)).describe()["symbols"] == "all"


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@host:1/0", "redis://:***@host:1/0"),
        ("rediss://user:p%40ss@host/0", "rediss://user:***@host/0"),
        ("redis://user@host/0", "redis://user@host/0"),
        ("redis://host/0?password=pw&db=1", "redis://host/0?password=***&db=1"),
    ],
)
def test_redact_password(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_a_missing_ca_file_is_named() -> None:
    with pytest.raises(ConfigError, match='exchange_ca_file: "/nonexistent/ca.pem" is not a file'):
        Config(exchange_ca_file="/nonexistent/ca.pem")


def test_a_ca_file_without_certificates_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match="holds no usable PEM certificate"):
        Config(exchange_ca_file=str(junk))


def test_symbols_all_stands_alone(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "symbols: all\n"), env={}).all_symbols
    assert load_config(None, env={"MARKET_DATA_SYMBOLS": "ALL"}).all_symbols
    assert not Config().all_symbols
    assert problems_of(write(tmp_path, "symbols: [all, btcusdt]\n"))[0].endswith(
        'symbols: "all" stands alone: it means every trading perpetual'
    )
    assert problems_of(write(tmp_path, "unknown_symbols: ignore\n"))[0].endswith(
        'unknown_symbols: "ignore" is not one of fail, skip'
    )


def test_numbers_in_exponent_form_are_numbers(tmp_path: Path) -> None:
    """PyYAML reads 1e3 as a string (YAML 1.1 wants 1.0e+3); a reader means a number."""
    path = write(tmp_path, "silence_timeout_s: 1e3\nrecording_max_bytes: 5e9\n")
    config = load_config(path, env={})
    assert config.silence_timeout_s == 1000.0 and config.recording_max_bytes == 5_000_000_000
    (problem,) = problems_of(write(tmp_path, "recording_max_bytes: 1.5e0\n", name="bad.yaml"))
    assert 'expected an integer, got "1.5e0"' in problem
    from_env = load_config(None, env={ENV_PREFIX + "RECORDING_MAX_BYTES": "5e9"})
    assert from_env.recording_max_bytes == 5_000_000_000  # the same in the environment


def test_history_folders_expand_home_and_must_be_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, "recording_dir: ~/rec\nparquet_dir: ~/pq\n"), env={})
    assert config.recording_dir == f"{tmp_path}/rec" and config.parquet_dir == f"{tmp_path}/pq"
    a_file = write(tmp_path, "", name="not-a-folder")
    (problem,) = problems_of(write(tmp_path, f"parquet_dir: {a_file}\n"))
    assert problem.endswith(f'parquet_dir: "{a_file}" is a file, not a folder')


def test_binance_has_no_unrouted_stream_for_trades_any_more(tmp_path: Path) -> None:
    """Since 2026-04-23 its /stream serves depth only: trades would never arrive."""
    (problem,) = problems_of(write(tmp_path, "use_split_routes: false\n"))
    assert "use_split_routes is false for fstream.binance.com" in problem
    assert "trades and 24h figures would never arrive" in problem
    stand_in = "use_split_routes: false\nexchange_ws_url: ws://127.0.0.1:9001\n"
    assert load_config(write(tmp_path, stand_in), env={}).use_split_routes is False


def test_the_ring_must_hold_two_records_of_the_published_depth(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "shm_capacity_bytes: 4097\n"))
    assert "shm_capacity_bytes (4097) holds fewer than 2 book records" in problem
    assert "at least 4224" in problem  # 128 B of header + 2 slots of 2048 B
    load_config(write(tmp_path, "shm_capacity_bytes: 4097\nshm_enabled: false\n"), env={})


def test_a_list_written_the_other_source_s_way_gets_a_hint(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "symbols: BTCUSDT, ETHUSDT\n", name="list.yaml"))
    assert problem.endswith("(a YAML list: [BTCUSDT, ETHUSDT])")
    (problem,) = problems_of(env={ENV_PREFIX + "SYMBOLS": "[BTCUSDT, ETHUSDT]"})
    assert "expected items separated by commas, no brackets" in problem


def test_an_empty_config_path_is_named() -> None:
    with pytest.raises(ConfigError, match=r"the config's path is empty \(--config ''\)"):
        load_config("", env={})


def test_a_redis_password_is_not_shown_in_an_error() -> None:
    (problem,) = problems_of(env={ENV_PREFIX + "REDIS_URL": "redis://:s3cret@host:xx/0"})
    assert "is not a valid URL" in problem and "s3cret" not in problem


def test_a_questdb_setting_s_secret_is_not_shown_in_its_error() -> None:
    (problem,) = problems_of(env={ENV_PREFIX + "QUESTDB_URL": "tcp::addr=q:9009;token=s3cret;"})
    assert "token=***" in problem and "s3cret" not in problem
