"""`make bench`'s own arithmetic and plumbing, without serving anything: the make target's
arguments, the command line's refusals, the ratios and shares in its tables, and the
measurement log written line by line. (The benchmark itself is run by hand: docs/benchmarks.md.)"""

import json
import subprocess
from pathlib import Path

import pytest

from tools.bench import main
from tools.bench_measure import (
    CEILING,
    Load,
    Report,
    Results,
    Route,
    _milliseconds,
    ceiling_rows,
    load_rows,
)
from tools.template import TEMPLATE_DIR

LIST = Route("items", "/api/v1/items?limit=20")


def _load(rps: float, p99: float = 10.0) -> Load:
    return Load(requests_per_second=rps, p50_ms=p99 / 2, p99_ms=p99, requests=int(rps), non_2xx=0)


def test_make_bench_passes_its_variables_through() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "bench", "DB=both", "BASE=2dde805", "VARIANT=yes", "ROUNDS=3", "SECONDS=1"],
        cwd=TEMPLATE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    command = " ".join(dry_run.replace("\\\n", " ").split())
    assert "-m tools.bench --db both --base 2dde805 --variant yes --rounds 3 --seconds 1" in command


def test_make_bench_without_variables_leaves_the_defaults_to_the_script() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "bench"], cwd=TEMPLATE_DIR, capture_output=True, text=True, check=True
    ).stdout
    bench_line = next(line for line in dry_run.splitlines() if "tools.bench" in line)
    assert "--db" not in bench_line
    assert "--rounds" not in dry_run


@pytest.mark.parametrize(
    "arguments",
    [["--rounds", "1"], ["--seconds", "0"], ["--variant", "yes"], ["--db", "mysql"]],
)
def test_the_command_line_refuses_what_it_cannot_measure(arguments: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(arguments)
    assert exit_.value.code == 2


def test_wrk_latencies_are_read_in_milliseconds() -> None:
    assert _milliseconds("850.00us") == pytest.approx(0.85)
    assert _milliseconds("12.5ms") == 12.5
    assert _milliseconds("1.20s") == 1200.0


def test_ratios_are_medians_of_the_rounds_ratios_not_ratios_of_medians() -> None:
    results = Results()
    # Round by round, "current" is 2x, 1x, 2x "base": the median of the ratios is 2.
    for base, current in [(100, 200), (400, 400), (150, 300)]:
        results.add("base", LIST.name, _load(base))
        results.add("current", LIST.name, _load(current))
    rows = load_rows(results, LIST, "base")
    assert rows[0].startswith("| base | `/api/v1/items?limit=20` | 150 |")
    assert "| 1.00 | 1.00 to 1.00 |" in rows[0]
    assert rows[1].startswith("| current | `/api/v1/items?limit=20` | 300 |")
    assert "| 2.00 | 1.50 to 2.00 |" in rows[1]


def test_a_setup_that_the_reference_lacks_shows_its_figures_without_a_ratio() -> None:
    results = Results()
    results.add("current", "ready", _load(500))
    results.add("current", "ready", _load(520))
    (row,) = load_rows(results, Route("ready", "/health/ready"), "base")
    assert row.startswith("| current | `/health/ready` | 510 |")
    assert "(no base)" in row


def test_the_ceiling_gets_its_own_table_of_shares() -> None:
    results = Results()
    for app, ceiling in [(100, 1000), (200, 1000), (300, 1000)]:
        results.add("no", LIST.name, _load(app))
        results.add(CEILING, LIST.name, _load(ceiling))
    assert all(CEILING not in row for row in load_rows(results, LIST, "no"))
    shares = ceiling_rows(results, LIST)
    assert "| no | 0.20 | 0.15 to 0.25 |" in shares
    assert ceiling_rows(results, Route("health", "/health")) == []


def test_every_measurement_is_on_disk_as_a_json_line_as_soon_as_it_is_taken(
    tmp_path: Path,
) -> None:
    report = Report("run-1", directory=tmp_path)
    report.start()
    report.context = {"mode": "base", "database": "postgresql"}
    report.record("load", setup="base", route="items", round=1, requests_per_second=12.5)
    first = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(first) == 1
    report.record("load", setup="current", route="items", round=1, requests_per_second=25.0)
    lines = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [line["setup"] for line in lines] == ["base", "current"]
    assert lines[1] | {"time": None} == {
        "time": None,
        "run": "run-1",
        "mode": "base",
        "database": "postgresql",
        "kind": "load",
        "setup": "current",
        "route": "items",
        "round": 1,
        "requests_per_second": 25.0,
    }
    report.publish(["| a | table |"])
    assert (tmp_path / "results.md").read_text() == "| a | table |\n"
