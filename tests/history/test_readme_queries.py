"""The README's DuckDB queries run on a store made by the Parquet writer."""

import re
from pathlib import Path

import duckdb
import pytest

from tests.history.store import make_store

README = Path(__file__).resolve().parents[2] / "README.md"


def history_sql() -> list[str]:
    text = README.read_text()
    section = text.split("## History", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


def test_the_readme_has_the_two_queries() -> None:
    assert len(history_sql()) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_readme_duckdb_query_runs(index: int, tmp_path: Path) -> None:
    make_store(tmp_path / "history", ("BTCUSDT", "ETHUSDT"), minutes=3)
    sql = history_sql()[index].replace("'history/", f"'{tmp_path}/history/")
    rows = duckdb.sql(sql).fetchall()
    assert len(rows) == 3  # three minutes
    for _minute, value, *_rest in rows:
        assert value is not None and value > 0
