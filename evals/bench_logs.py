"""Peak memory of fetching a window of logs from Elasticsearch: counts from aggregations,
capped samples, target <= 500 MB with 1 M lines in the window.

The Elasticsearch side is the test double (``tests/es_double.py``) run in a *separate
process* (``tests/es_synthetic.py``) pre-loaded with synthetic ECS lines, so only the
connector's process is measured: its peak RSS (``ru_maxrss``, what the target is about)
and, with ``--tracemalloc``, the peak of Python allocations during the fetch. Pass
``--url`` to measure against a real cluster holding the lines instead (``--index`` names
the pattern).

Example::

    python -m evals.bench_logs --lines 1000000 --services 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.elasticsearch import ElasticsearchSource
from connectors.settings import ElasticsearchSettings

DOUBLE = Path(__file__).resolve().parent.parent / "tests" / "es_synthetic.py"
START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)  # tests/es_synthetic.py's START
SPAN = timedelta(hours=2)


@dataclass
class BenchConfig:
    lines: int = 1_000_000
    services: int = 10
    url: str | None = None  # a real cluster instead of the double
    index: str = "logs-*"
    sample_cap: int = 20_000
    max_records: int = 200_000
    tracemalloc: bool = False  # also trace Python allocations (slower, inflates RSS)


@dataclass
class BenchResult:
    lines: int
    services: int
    records: int
    count_signals: int
    fetch_s: float
    rss_before_mb: float
    peak_rss_mb: float
    python_peak_mb: float | None
    notes: list[str]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


@contextmanager
def _double(lines: int, services: int) -> Iterator[str]:
    """The test double in its own process, pre-loaded; yields its URL."""
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "url"
        command = [sys.executable, str(DOUBLE), "--port-file", str(port_file)]
        command += ["--lines", str(lines), "--services", str(services)]
        process = subprocess.Popen(command, cwd=DOUBLE.parent)
        try:
            while not port_file.exists() or not port_file.read_text():
                if process.poll() is not None:
                    raise SystemExit(f"the Elasticsearch double exited with {process.returncode}")
                time.sleep(0.2)
            yield port_file.read_text()
        finally:
            process.terminate()
            process.wait(timeout=10)


def measure(url: str, config: BenchConfig) -> BenchResult:
    settings = ElasticsearchSettings(
        index=config.index,
        sample_cap=config.sample_cap,
        max_records=config.max_records,
        timeout_s=120,
        budget_s=600,
    )
    source = ElasticsearchSource(url, settings)
    rss_before = _rss_mb()
    if config.tracemalloc:
        tracemalloc.start()
    clock = time.perf_counter()
    fetched = source.fetch([], START, START + SPAN)
    elapsed = time.perf_counter() - clock
    python_peak = None
    if config.tracemalloc:
        python_peak = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()
    counted = sum(
        round(sum(v for v in s.values if v) * (s.resolution_s or 0)) for s in fetched.count_signals
    )
    return BenchResult(
        lines=counted,
        services=len({s.service for s in fetched.count_signals}),
        records=len(fetched.records),
        count_signals=len(fetched.count_signals),
        fetch_s=round(elapsed, 2),
        rss_before_mb=round(rss_before, 1),
        peak_rss_mb=round(_rss_mb(), 1),
        python_peak_mb=python_peak,
        notes=fetched.notes[:3],
    )


def main(config: BenchConfig) -> BenchResult:
    if config.url:
        return measure(config.url, config)
    with _double(config.lines, config.services) as url:
        return measure(url, config)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = BenchConfig()
    parser.add_argument("--lines", type=int, default=defaults.lines)
    parser.add_argument("--services", type=int, default=defaults.services)
    parser.add_argument("--url", default=None, help="a real cluster instead of the double")
    parser.add_argument("--index", default=defaults.index)
    parser.add_argument("--sample-cap", type=int, default=defaults.sample_cap)
    parser.add_argument("--max-records", type=int, default=defaults.max_records)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also report the Python allocation peak"
    )
    return parser


if __name__ == "__main__":
    args = _parser().parse_args()
    result = main(BenchConfig(**{k: v for k, v in vars(args).items()}))
    print(json.dumps(asdict(result), indent=2))
