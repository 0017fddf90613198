"""Service configuration: defaults, a YAML file, then environment overrides.

:func:`load_config` reads ``config.yaml`` (or the file given), applies every
``MARKET_DATA_<KEY>`` environment variable on top, validates everything and
returns a frozen :class:`Config`. It reports all problems at once, one per
line, each naming its source (file or variable), the key and the reason, so a
bad deployment is fixed in one round. ``config.example.yaml`` documents every
key with its default.
"""

import dataclasses
import difflib
import functools
import json
import math
import os
import re
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from market_data.core.trade_watch import DEFAULT_AFTER_S as DEFAULT_TRADES_SILENT_AFTER_S
from market_data.core.weights import SNAPSHOT_LIMITS
from market_data.errors import ConfigError
from market_data.ops.words import FALSE_WORDS, SYMBOL, TRUE_WORDS, url_problem
from market_data.outputs.redis_url import RedisUrlError, parse_redis_url, redact_url
from market_data.wire.ring import HEADER_SIZE, MIN_SLOT_COUNT, slot_size_for_depth

ENV_PREFIX = "MARKET_DATA_"
DEFAULT_PATHS = (Path("config.yaml"), Path("config.example.yaml"))

DEPTH_STREAMS = ("depth", "depth@100ms", "depth@500ms", "depth@0ms")
PARTIAL_DEPTH_LEVELS = (5, 10, 20)
MAX_STREAMS_PER_CONNECTION = 200  # Binance USD-M limit per WebSocket connection
#: Binance closes every connection after 24 h (BINANCE_FUTURES.md section 2); the
#: make-before-break rotation takes seconds after the handshake, so it must start a
#: margin before the cut or the exchange wins the race every day.
MAX_CONNECTION_AGE_S = 86_400 - 300

#: ``symbols: all`` (normalised): serve every TRADING perpetual of the exchange.
ALL_SYMBOLS = "ALL"
# A POSIX shared-memory name is one path component of /dev/shm; 200 leaves room
# for suffixes the writer may add within NAME_MAX (255).
_SHM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Effective configuration of the service; see config.example.yaml for each key.

    Constructing one directly validates and normalises it the same way the
    loader does (symbols are upper-cased, lists become tuples, URLs lose a
    trailing slash) and raises :class:`ConfigError` when it is invalid.
    """

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    exchange_ws_url: str = "wss://fstream.binance.com"
    exchange_rest_url: str = "https://fapi.binance.com"
    redis_url: str = "redis://localhost:6379/0"
    order_book_depth: int = 20
    health_port: int = 9090
    shm_name: str = "market_data"
    reconnect_delay_ms: int = 1000
    max_reconnect_delay_ms: int = 60_000
    depth_stream: str = "depth@100ms"
    use_split_routes: bool = True
    streams_per_connection: int = 200
    snapshot_limit: int = 1000
    rest_weight_budget_per_minute: int = 2400
    max_levels_per_side: int = 1000
    sync_buffer_max: int = 1_000
    silence_timeout_s: float = 30.0
    trades_silent_after_s: float = DEFAULT_TRADES_SILENT_AFTER_S
    connection_max_age_s: float = 23 * 3600.0
    ready_max_book_age_s: float = 10.0
    http_host: str = "0.0.0.0"
    cors_allow_origin: str = "*"
    ui_token: str = ""
    publish_trades_max_queue: int = 10_000
    partial_depth_levels: int = 20
    cpu_affinity: tuple[int, ...] = ()
    shm_enabled: bool = True
    shm_capacity_bytes: int = 64 * 1024 * 1024
    shm_group_access: bool = False
    log_json: bool = False
    exchange_ca_file: str = ""
    rest_weight_share: float = 1.0
    unknown_symbols: str = "fail"
    symbols_quote_asset: str = ""
    exchange_info_refresh_s: float = 600.0
    geo_block_retry_s: float = 300.0
    book_refresh_interval_s: float = 3600.0
    feed_lines: int = 1
    trade_stream_maxlen: int = 10_000
    ha_group: str = ""
    ha_lease_ms: int = 2000
    recording_dir: str = ""
    recording_rotate: str = "hour"
    recording_max_age_days: float = 0.0
    recording_max_bytes: int = 0
    history_queue_max: int = 200_000
    history_cpu_affinity: tuple[int, ...] = ()
    history_priority: str = "idle"
    parquet_dir: str = ""
    parquet_book_snapshot_levels: int = 10
    parquet_book_snapshot_interval_ms: int = 100
    parquet_row_group_rows: int = 100_000
    parquet_flush_s: float = 5.0
    questdb_url: str = ""
    # Where the values came from, for logs; not a configuration key.
    source: str = dataclasses.field(default="defaults", compare=False)

    def __post_init__(self) -> None:
        values: dict[str, object] = {}
        problems: list[str] = []
        for name, key in _KEYS.items():
            try:
                values[name] = key.check(key.coerce(getattr(self, name)))
            except _Invalid as invalid:
                problems.extend(f"{name}: {reason}" for reason in invalid.reasons)
        if not problems:
            problems.extend(reason for _, reason in _cross_check(values))
        if problems:
            raise ConfigError("\n".join(problems))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        # Redacted, so that logging a Config never leaks the Redis password.
        fields = ", ".join(f"{name}={value!r}" for name, value in self.describe().items())
        return f"Config({fields})"

    @property
    def all_symbols(self) -> bool:
        """``symbols: all``: every TRADING perpetual the exchange lists."""
        return self.symbols == (ALL_SYMBOLS,)

    @property
    def reconnect_delay_s(self) -> float:
        return self.reconnect_delay_ms / 1000.0

    @property
    def max_reconnect_delay_s(self) -> float:
        return self.max_reconnect_delay_ms / 1000.0

    def with_overrides(self, **changes: Any) -> "Config":
        """A validated copy with some keys changed (``market-data demo`` swaps the URLs)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict[str, object]:
        """Every key with its effective value, the Redis password redacted: safe to print."""
        described: dict[str, object] = {}
        for name in _KEYS:
            value = getattr(self, name)
            described[name] = list(value) if isinstance(value, tuple) else value
        described["redis_url"] = redact_url(self.redis_url)
        if self.all_symbols:
            described["symbols"] = "all"  # as written in a config, not the internal marker
        if self.ui_token:
            described["ui_token"] = "***"
        if self.questdb_url:  # the client's settings may carry username/password/token
            described["questdb_url"] = redact_questdb_conf(self.questdb_url)
        return described


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load, override and validate the configuration.

    ``path`` is read if given (a missing file is an error). Otherwise the first
    of ``config.yaml`` and ``config.example.yaml`` found in the current
    directory is read, else the defaults are used. Then every
    ``MARKET_DATA_<KEY>`` variable of ``env`` (default ``os.environ``)
    overrides its key: lists are comma separated, booleans are
    true/false/1/0/yes/no/on/off. A ``MARKET_DATA_`` variable that looks like a
    misspelt key is an error; other ``MARKET_DATA_`` names are left alone.
    Raises :class:`ConfigError` listing every problem, one per line.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}  # key -> the file or variable that set it
    failed: set[str] = set()

    def parse(name: str, source: str, label: str, parse_value: Callable[[], object]) -> None:
        origin[name] = source
        try:
            values[name] = _KEYS[name].check(parse_value())
        except _Invalid as invalid:
            values.pop(name, None)
            failed.add(name)
            problems.extend(f"{label}: {reason}" for reason in invalid.reasons)

    sources: list[str] = []
    file_path = _choose_file(path)
    if file_path is not None:
        sources.append(str(file_path))
        for name, value in _read_yaml(file_path, problems).items():
            if isinstance(name, str) and name in _KEYS:
                coerce = _KEYS[name].coerce
                parse(
                    name, str(file_path), f"{file_path}: {name}", functools.partial(coerce, value)
                )
            else:
                suggestion = _suggest(str(name), _KEYS)
                problems.append(f"{file_path}: unknown key {_show(name)}{suggestion}")

    env_names = {ENV_PREFIX + name.upper(): name for name in _KEYS}
    overridden: list[str] = []
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX):
            continue
        if variable in env_names:
            name, text = env_names[variable], env[variable]
            from_env = _KEYS[name].from_env
            parse(name, variable, variable, functools.partial(from_env, text))
            overridden.append(variable)
        else:
            close = difflib.get_close_matches(variable, env_names, n=1, cutoff=0.85)
            if close:
                problems.append(f"{variable}: unknown setting (did you mean {close[0]}?)")
    if overridden:
        sources.append("env " + ", ".join(overridden))

    effective = {name: values.get(name, getattr(_DEFAULTS, name)) for name in _KEYS}
    for names, reason in _cross_check(effective):
        if not failed.intersection(names):
            blamed = sorted({origin[name] for name in names if name in origin})
            problems.append(f"{', '.join(blamed)}: {reason}" if blamed else reason)
    if problems:
        raise ConfigError("\n".join(problems))
    return dataclasses.replace(_DEFAULTS, **values, source=" + ".join(sources) or "defaults")


# --- per-key parsing and validation ------------------------------------------------------


class _Invalid(Exception):
    """One key's value is wrong; carries one reason per problem found."""

    def __init__(self, *reasons: str) -> None:
        super().__init__(*reasons)
        self.reasons = reasons


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    coerce: Callable[[object], object]  # a YAML / Python value to the key's type
    from_env: Callable[[str], object]  # an environment string to the key's type
    check: Callable[[Any], object]  # validates, returns the normalised value


def _show(value: object) -> str:
    """A value as the user wrote it: strings quoted, YAML spellings for the rest."""
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)


def _suggest(word: str, choices: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {_show(close[0])}?)" if close else ""


#: ``1e3``, ``1.5e-3``: numbers that YAML 1.1 (PyYAML) reads as strings, because its
#: floats need a dot and a signed exponent (``1.0e+3``).
_EXPONENT_FORM = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _exponent_number(value: object) -> float | None:
    if isinstance(value, str) and _EXPONENT_FORM.match(value.strip()):
        return float(value)
    return None


def _as_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _exponent_number(value)
    if number is not None and math.isfinite(number) and number.is_integer():
        return int(number)
    raise _Invalid(f"expected an integer, got {_show(value)}")


def _as_float(value: object) -> float:
    number = _exponent_number(value)
    if number is not None:
        value = number
    if isinstance(value, int | float) and not isinstance(value, bool):
        if math.isfinite(value):
            return float(value)
    raise _Invalid(f"expected a number, got {_show(value)}")


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    raise _Invalid(f"expected true or false, got {_show(value)}")


def _as_str(value: object) -> str:
    if isinstance(value, str):
        return value
    hint = " (YAML reads bare yes/no/on/off as booleans: quote the value)"
    raise _Invalid(
        f"expected a string, got {_show(value)}{hint if isinstance(value, bool) else ''}"
    )


def _list_of(item: Callable[[object], object], what: str) -> Callable[[object], object]:
    def coerce(value: object) -> tuple[object, ...]:
        if not isinstance(value, list | tuple):
            hint = ""
            if isinstance(value, str) and "," in value:  # a YAML list is [A, B]
                hint = f" (a YAML list: [{', '.join(p.strip() for p in value.split(','))}])"
            raise _Invalid(f"expected a list of {what}, got {_show(value)}{hint}")
        items: list[object] = []
        reasons: list[str] = []
        for element in value:
            try:
                items.append(item(element))
            except _Invalid as invalid:
                reasons.extend(invalid.reasons)
        if reasons:
            raise _Invalid(*reasons)
        return tuple(items)

    return coerce


def _env_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return _as_int(text)  # 5e9, as in a file; else its error


def _env_float(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _Invalid(f"expected a number, got {_show(text)}")
    return number


def _env_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise _Invalid(f"expected true/false/1/0/yes/no, got {_show(text)}")


def _env_list(item: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> tuple[object, ...]:
        items: list[object] = []
        reasons: list[str] = []
        if text.strip().startswith("["):  # a YAML list, where the environment takes A,B
            raise _Invalid(f"expected items separated by commas, no brackets: got {_show(text)}")
        for part in text.split(","):
            if part.strip():
                try:
                    items.append(item(part.strip()))
                except _Invalid as invalid:
                    reasons.extend(invalid.reasons)
        if reasons:
            raise _Invalid(*reasons)
        return tuple(items)

    return parse


def _in_range(low: int | float, high: int | float | None = None) -> Callable[[Any], object]:
    def check(value: int | float) -> int | float:
        if high is None and value < low:
            raise _Invalid(f"{value} must be at least {low}")
        if high is not None and not low <= value <= high:
            raise _Invalid(f"{value} is out of range {low}..{high}")
        return value

    return check


def _above_zero(value: float) -> float:
    if value <= 0:
        raise _Invalid(f"{value} must be greater than 0")
    return value


def _one_of(*choices: object) -> Callable[[Any], object]:
    def check(value: object) -> object:
        if value not in choices:
            allowed = ", ".join(str(choice) for choice in choices)
            raise _Invalid(f"{_show(value)} is not one of {allowed}")
        return value

    return check


def _url(*schemes: str) -> Callable[[Any], object]:
    def check(url: str) -> str:
        problem = url_problem(url, schemes)
        if problem is not None:
            raise _Invalid(f"{_show(url)} {problem}")
        return url.rstrip("/")

    return check


_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "rediss+cluster")


def _redis_url(url: str) -> str:
    """Every check ``run`` would make of it (its database too), at load, not at start;
    the password never in the reasons."""
    problem = url_problem(url, _REDIS_SCHEMES)
    if problem is not None:
        raise _Invalid(f"{_show(redact_url(url))} {problem}")
    try:
        parse_redis_url(url)
    except RedisUrlError as error:
        raise _Invalid(str(error)) from None
    return url.rstrip("/")


def _as_symbols(value: object) -> tuple[object, ...]:
    """A list of symbols, or the word ``all``."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return (ALL_SYMBOLS,)
    symbols = _list_of(_as_str, "symbols (or the word all)")(value)
    assert isinstance(symbols, tuple)
    return symbols


def _check_symbols(symbols: tuple[str, ...]) -> tuple[str, ...]:
    if len(symbols) == 1 and symbols[0].strip().upper() == ALL_SYMBOLS:
        return (ALL_SYMBOLS,)
    reasons: list[str] = []
    seen: set[str] = set()
    normalised: list[str] = []
    for written in symbols:
        symbol = written.strip().upper()
        if symbol == ALL_SYMBOLS:
            reasons.append('"all" stands alone: it means every trading perpetual')
        elif not SYMBOL.match(symbol):
            reasons.append(f"{_show(written)} is not a valid symbol (2-20 letters or digits)")
        elif symbol in seen:
            reasons.append(f"{_show(symbol)} is listed twice")
        else:
            seen.add(symbol)
            normalised.append(symbol)
    if not symbols:
        reasons.append("at least one symbol is required")
    if reasons:
        raise _Invalid(*reasons)
    return tuple(normalised)


def _check_ha_group(group: str) -> str:
    if group and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", group):
        raise _Invalid(f"{_show(group)} is not a group name (1-64 of A-Z a-z 0-9 _ . -)")
    return group


def _check_quote_asset(asset: str) -> str:
    if asset and not re.fullmatch(r"[A-Za-z0-9]{2,10}", asset):
        raise _Invalid(f"{_show(asset)} is not an asset name (e.g. USDT)")
    return asset.upper()


def _check_cpu_affinity(cores: tuple[int, ...]) -> tuple[int, ...]:
    reasons = [f"core {core} must be at least 0" for core in cores if core < 0]
    reasons += [f"core {core} is listed twice" for core in set(cores) if cores.count(core) > 1]
    if reasons:
        raise _Invalid(*reasons)
    return cores


def _check_shm_name(name: str) -> str:
    if not _SHM_NAME.match(name) or name in (".", ".."):
        raise _Invalid(
            f"{_show(name)} is not a valid shared-memory name "
            "(1-200 of A-Z a-z 0-9 _ . -, no slash)"
        )
    return name


def _check_http_host(host: str) -> str:
    if not host or any(char.isspace() for char in host):
        raise _Invalid(f"{_show(host)} is not a host name or address")
    return host


def _check_cors_origin(origin: str) -> str:
    if origin in ("", "*"):
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise _Invalid(f'{_show(origin)} is not "*", "" or an origin like "https://example.com"')
    return origin


def _check_ui_token(token: str) -> str:
    if token and (len(token) < 8 or any(char.isspace() for char in token)):
        raise _Invalid("must be empty (no token) or at least 8 characters without spaces")
    return token


def _no_check(value: object) -> object:
    return value


def _folder(path: str) -> str:
    """Empty (off) or a folder, made at start if missing; ``~`` is the user's home."""
    if not path:
        return path
    expanded = os.path.expanduser(path)
    if os.path.isfile(expanded):  # (False, not an error, where a parent is not searchable)
        raise _Invalid(f"{_show(path)} is a file, not a folder")
    return expanded


def _check_ca_file(path: str) -> str:
    """Empty (the system's CAs only) or a readable file of PEM certificates."""
    if not path:
        return path
    if not Path(path).is_file():
        raise _Invalid(f"{_show(path)} is not a file")
    try:
        ssl.create_default_context().load_verify_locations(path)
    except (ssl.SSLError, OSError) as exc:
        raise _Invalid(f"{_show(path)} holds no usable PEM certificate ({exc})") from None
    return path


#: ``addr=<something>`` as one of the settings (``;;``, an escaped ``;``, taken out first).
_QUESTDB_ADDR = re.compile(r"(?:^|;)\s*addr\s*=\s*[^;\s]")


def redact_questdb_conf(conf: str) -> str:
    """The QuestDB client's settings with their secrets (password, tokens) as ``***``."""
    return re.sub(r"((?:password|token|token_x|token_y)=)(?:[^;]|;;)*", r"\1***", conf)


def _check_questdb_conf(conf: str) -> str:
    """The client's own string; its ``addr`` at least (the client refuses it later, and
    the output would retry for ever). Values may hold ``;;`` (an escaped ``;``)."""
    if not conf:
        return conf
    shown = _show(redact_questdb_conf(conf))
    if not conf.startswith(("http::", "https::")):
        raise _Invalid(f"{shown} is not a QuestDB ILP/HTTP configuration (http::addr=HOST:PORT;)")
    if not _QUESTDB_ADDR.search(conf.partition("::")[2].replace(";;", "")):
        raise _Invalid(f"{shown} names no addr (http::addr=HOST:PORT;)")
    return conf


def _check_share(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise _Invalid(f"{value} is out of range (0, 1]")
    return value


def _key(kind: str, check: Callable[[Any], object] = _no_check) -> _Key:
    coerce, from_env = _KINDS[kind]
    return _Key(coerce, from_env, check)


_KINDS: dict[str, tuple[Callable[[object], object], Callable[[str], object]]] = {
    "int": (_as_int, _env_int),
    "float": (_as_float, _env_float),
    "bool": (_as_bool, _env_bool),
    "str": (_as_str, str.strip),
    "symbols": (_as_symbols, _env_list(str)),
    "ints": (_list_of(_as_int, "integers"), _env_list(_env_int)),
}

_KEYS: dict[str, _Key] = {  # every configuration key, in the order of Config
    "symbols": _key("symbols", _check_symbols),
    "exchange_ws_url": _key("str", _url("ws", "wss")),
    "exchange_rest_url": _key("str", _url("http", "https")),
    "redis_url": _key("str", _redis_url),
    "order_book_depth": _key("int", _in_range(1, 1000)),
    "health_port": _key("int", _in_range(0, 65535)),
    "shm_name": _key("str", _check_shm_name),
    "reconnect_delay_ms": _key("int", _in_range(1)),
    "max_reconnect_delay_ms": _key("int", _in_range(1)),
    "depth_stream": _key("str", _one_of(*DEPTH_STREAMS)),
    "use_split_routes": _key("bool"),
    "streams_per_connection": _key("int", _in_range(1, MAX_STREAMS_PER_CONNECTION)),
    "snapshot_limit": _key("int", _one_of(*SNAPSHOT_LIMITS)),
    "rest_weight_budget_per_minute": _key("int", _in_range(1)),
    "max_levels_per_side": _key("int", _in_range(1)),
    "sync_buffer_max": _key("int", _in_range(1)),
    "silence_timeout_s": _key("float", _above_zero),
    "trades_silent_after_s": _key("float", _above_zero),
    "connection_max_age_s": _key("float", _in_range(1, MAX_CONNECTION_AGE_S)),
    "ready_max_book_age_s": _key("float", _above_zero),
    "http_host": _key("str", _check_http_host),
    "cors_allow_origin": _key("str", _check_cors_origin),
    "ui_token": _key("str", _check_ui_token),
    "publish_trades_max_queue": _key("int", _in_range(1)),
    "partial_depth_levels": _key("int", _one_of(*PARTIAL_DEPTH_LEVELS)),
    "cpu_affinity": _key("ints", _check_cpu_affinity),
    "shm_enabled": _key("bool"),
    "shm_capacity_bytes": _key("int", _in_range(4096, 1 << 40)),
    "shm_group_access": _key("bool"),
    "log_json": _key("bool"),
    "exchange_ca_file": _key("str", _check_ca_file),
    "rest_weight_share": _key("float", _check_share),
    "unknown_symbols": _key("str", _one_of("fail", "skip")),
    "symbols_quote_asset": _key("str", _check_quote_asset),
    "exchange_info_refresh_s": _key("float", _in_range(10, 86_400)),
    "geo_block_retry_s": _key("float", _in_range(1, 86_400)),
    "book_refresh_interval_s": _key("float", _in_range(0, 7 * 86_400)),
    "feed_lines": _key("int", _in_range(1, 3)),
    "trade_stream_maxlen": _key("int", _in_range(0, 10**9)),
    "ha_group": _key("str", _check_ha_group),
    "ha_lease_ms": _key("int", _in_range(200, 60_000)),
    "recording_dir": _key("str", _folder),
    "recording_rotate": _key("str", _one_of("hour", "day")),
    "recording_max_age_days": _key("float", _in_range(0, 36_500)),
    "recording_max_bytes": _key("int", _in_range(0)),
    "history_queue_max": _key("int", _in_range(1_000, 10**8)),
    "history_cpu_affinity": _key("ints", _check_cpu_affinity),
    "history_priority": _key("str", _one_of("idle", "background")),
    "parquet_dir": _key("str", _folder),
    "parquet_book_snapshot_levels": _key("int", _in_range(1, 1000)),
    "parquet_book_snapshot_interval_ms": _key("int", _in_range(0, 3_600_000)),
    "parquet_row_group_rows": _key("int", _in_range(100, 10_000_000)),
    "parquet_flush_s": _key("float", _in_range(0.1, 600)),
    "questdb_url": _key("str", _check_questdb_conf),
}


_AT_LEAST = (
    ("max_reconnect_delay_ms", "reconnect_delay_ms"),
    ("max_levels_per_side", "order_book_depth"),
)


def _cross_check(values: Mapping[str, Any]) -> list[tuple[tuple[str, str], str]]:
    """Rules between keys, as ((keys involved), reason)."""
    problems = [
        ((larger, smaller), f"{larger} ({values[larger]}) is below {smaller} ({values[smaller]})")
        for larger, smaller in _AT_LEAST
        if values[larger] < values[smaller]
    ]
    # The ring needs room for a few book records of the published depth.
    smallest = HEADER_SIZE + MIN_SLOT_COUNT * slot_size_for_depth(values["order_book_depth"])
    if values["shm_enabled"] and values["shm_capacity_bytes"] < smallest:
        problems.append(
            (
                ("shm_capacity_bytes", "order_book_depth"),
                f"shm_capacity_bytes ({values['shm_capacity_bytes']}) holds fewer than "
                f"{MIN_SLOT_COUNT} book records of order_book_depth "
                f"({values['order_book_depth']}): at least {smallest}",
            )
        )
    # Binance retired the unrouted URLs on 2026-04-23: /stream now serves /public data
    # only, so trades and 24h tickers would be acknowledged and never arrive, with
    # every book live (BINANCE_FUTURES.md section 2). Other hosts (a stand-in) may
    # still serve everything there.
    host = urlsplit(str(values["exchange_ws_url"])).hostname or ""
    if not values["use_split_routes"] and (host == "binance.com" or host.endswith(".binance.com")):
        problems.append(
            (
                ("use_split_routes", "exchange_ws_url"),
                f"use_split_routes is false for {host}, whose unrouted /stream serves depth "
                "only since 2026-04-23: trades and 24h figures would never arrive",
            )
        )
    return problems


# --- reading the file --------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {_show(key)} is written twice", key_node.start_mark
                )
            if isinstance(key, str):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _choose_file(path: str | Path | None) -> Path | None:
    if path is not None:
        if not str(path).strip():
            raise ConfigError("the config's path is empty (--config '')")
        chosen = Path(path)
        if not chosen.is_file():
            reason = "is not a file" if chosen.exists() else "no such config file"
            raise ConfigError(f"{chosen}: {reason}")
        return chosen
    return next((candidate for candidate in DEFAULT_PATHS if candidate.is_file()), None)


def _read_yaml(path: Path, problems: list[str]) -> dict[object, object]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        where = ""
        if error.problem_mark is not None:
            mark = error.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problems.append(f"{path}: YAML error: {where}{error.problem}")
        return {}
    except yaml.YAMLError as error:
        problems.append(f"{path}: YAML error: {error}")
        return {}
    if document is None:
        return {}
    if not isinstance(document, dict):
        problems.append(f"{path}: expected a mapping of key: value at the top level")
        return {}
    return document


_DEFAULTS = Config()
