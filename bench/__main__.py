"""`python -m bench`: run the benchmarks (options: `python -m bench --help`)."""

from bench.cli import main

raise SystemExit(main())
