"""Run every benchmark module (benchmarks/bench_*.py), or those named on the command line.

Each module has `main(context) -> None` and prints its own figures; `context` tells where the
services it may need are. Results go to standard output; docs/benchmarks.md records them.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class BenchContext:
    mariadb_url: str  # a server URL on which benchmarks may create and drop their own databases


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    context = BenchContext(mariadb_url=os.environ.get("TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"))
    names = argv or sorted(path.stem for path in Path(__file__).parent.glob("bench_*.py"))
    print(f"# make bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
    for name in names:
        print(f"\n## {name}")
        sys.stdout.flush()
        importlib.import_module(f"benchmarks.{name}").main(context)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
