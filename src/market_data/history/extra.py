"""The optional ``history`` extra (pyarrow, questdb): imported only when configured."""

from types import ModuleType

from market_data.errors import ConfigError


def require(module: str, key: str) -> ModuleType:
    """Import ``module`` or explain which extra to install for ``key``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"{key}: needs the {module.split('.')[0]} package: pip install 'market-data[history]'"
        ) from None
