"""`make bench`: run every tests/benchmarks/bench_*.py module's main() and print its figures."""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path


def main() -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    wanted = set(sys.argv[1:])
    failed = 0
    for name in modules:
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            importlib.import_module(f"tests.benchmarks.{name}").main()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
