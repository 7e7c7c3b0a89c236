"""The instance catalogue: the shipped example parses; a bad file names the entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferryman.capacity.catalogue import load_catalogue, parse_catalogue
from ferryman.capacity.cost import endpoint_cost, find_shape
from ferryman.errors import InvalidInput

GOOD = """
[[instance]]
name = "a"
vcpus = 2
memory_gib = 4
price_per_hour = 0.1
"""


def test_the_example_catalogue_is_shipped_and_says_its_prices_are_examples() -> None:
    shapes = load_catalogue(None)
    assert len(shapes) >= 3
    assert all(shape.price_per_hour > 0 for shape in shapes)
    text = (Path(__file__).parents[2] / "src/ferryman/data/instances.example.toml").read_text()
    assert "EXAMPLES, not quotes" in text


def test_a_users_file_takes_its_place(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    (shape,) = load_catalogue(path)
    assert (shape.name, shape.vcpus, shape.gpus, shape.memory_bytes) == ("a", 2, 0, 4 * 1024**3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace("0.1", '"cheap"'),
            r"instance 1 \(a\): field 'price_per_hour' .*given 'cheap'",
        ),
        (GOOD.replace("vcpus = 2\n", ""), r"instance 1 \(a\): field 'vcpus' .*missing"),
        (GOOD.replace("vcpus = 2", "vcpus = 0"), r"field 'vcpus' .*greater than or equal to 1"),
        (GOOD + "colour = 'red'\n", r"field 'colour' extra inputs"),
        (GOOD + GOOD, r"instance name 'a' appears twice"),
        ("[[instance]\nname = 1", r"mine.toml is not valid TOML"),
        ("title = 'x'\n", r"unknown table 'title'"),
        ("", r"has no \[\[instance\]\] entries"),
    ],
)
def test_a_bad_catalogue_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_catalogue(text, "mine.toml")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read the instance catalogue 'nope.toml'"):
        load_catalogue(tmp_path / "nope.toml")


def test_endpoint_cost_per_hour_and_per_thousand_requests() -> None:
    (shape,) = parse_catalogue(GOOD.replace("0.1", "0.36"), "c")
    cost = endpoint_cost("digits", 3, 20.0, shape)
    assert cost.cost_per_hour == pytest.approx(1.08)
    assert cost.cost_per_1k_requests == pytest.approx(1.08 / 72_000 * 1000)
    assert endpoint_cost("digits", 3, 0.0, shape).cost_per_1k_requests is None
    assert find_shape((shape,), "a") is shape
    with pytest.raises(InvalidInput, match="FERRYMAN_COST__INSTANCE"):
        find_shape((shape,), None)
    with pytest.raises(InvalidInput, match="'b' is not in the catalogue; its instances: a"):
        find_shape((shape,), "b")
