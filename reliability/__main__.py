"""`python -m reliability`: run the reliability scenarios (options: `python -m reliability --help`)."""

from reliability.cli import main

raise SystemExit(main())
