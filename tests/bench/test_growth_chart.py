"""The growth curve's picture: every point drawn where its figures put it."""

import dataclasses
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from market_data.bench import growth
from market_data.bench.growth import Point, Scenario
from market_data.bench.growth_chart import growth_svg
from market_data.cli import build_parser
from tests.bench.test_growth import made_up_point

SVG = "{http://www.w3.org/2000/svg}"


def _as(series: str, point: Point, value: int) -> Point:
    scenario = dataclasses.replace(Scenario(100, 1000, 1), **{series: value})
    return dataclasses.replace(point, series=series, scenario=scenario)


def points() -> list[Point]:
    return [
        made_up_point(1, 0.2, 40.0),  # conflated: not the same work as the others
        made_up_point(100, 1.0, 80.0),
        made_up_point(500, 1.0, 84.0),
        _as("depth", made_up_point(100, 1.0, 80.0), 1000),
        _as("depth", made_up_point(100, 1.0, 120.0), 5000),  # outside the flat band
        _as("subscribers", made_up_point(100, 1.0, 80.0), 1),
        _as("subscribers", made_up_point(100, 1.0, 82.0), 20),
    ]


def test_one_panel_per_series_and_one_marker_per_point() -> None:
    root = ET.fromstring(growth_svg(points(), 5000.0))
    panels = root.findall(f"{SVG}g")
    assert [g.get("data-series") for g in panels] == ["symbols", "depth", "subscribers"]
    markers = [len(g.findall(f"{SVG}circle")) for g in panels]
    assert markers == [3, 2, 2]
    symbols = panels[0]
    hollow = [c for c in symbols.findall(f"{SVG}circle") if "conflated" in (c.get("class") or "")]
    assert len(hollow) == 1 and hollow[0].get("fill") == "white"
    labels = [t.text for t in symbols.findall(f"{SVG}text")]
    assert {"40", "80", "84", "1", "100", "500"} <= set(labels)


def test_the_flat_band_starts_at_the_first_point_doing_the_same_work() -> None:
    root = ET.fromstring(growth_svg(points(), 5000.0))
    symbols, depth, _ = root.findall(f"{SVG}g")

    def y_of_median(panel: ET.Element, index: int) -> float:
        return float(panel.findall(f"{SVG}circle")[index].get("cy", "nan"))

    (band,) = symbols.findall(f"{SVG}rect")
    top, bottom = (
        float(band.get("y", "nan")),
        float(band.get("y", "nan")) + float(band.get("height", "nan")),
    )
    assert bottom == pytest.approx(y_of_median(symbols, 1), abs=0.1)  # from the 100-symbol point
    assert top <= y_of_median(symbols, 2) <= bottom  # 84 is within 10% of 80: inside
    (band,) = depth.findall(f"{SVG}rect")
    assert y_of_median(depth, 1) < float(band.get("y", "nan"))  # 120: above the band


def test_a_chart_needs_points() -> None:
    with pytest.raises(ValueError, match="no point"):
        growth_svg([], 5000.0)


def test_the_command_draws_the_chart_it_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--chart`` writes the picture of the points the run measured (here, made up)."""

    async def measured(*_: object) -> list[Point]:
        return points()

    monkeypatch.setattr(growth, "run_all", measured)
    chart = tmp_path / "growth.svg"
    argv = ["bench", "growth", "--rate", "5000", "--chart", str(chart)]
    out = io.StringIO()
    growth.run_bench(build_parser(argv).parse_args(argv), out=out)
    assert f"chart: {chart}" in out.getvalue()
    root = ET.fromstring(chart.read_text(encoding="utf-8"))
    assert len(root.findall(f"{SVG}g")) == 3
