"""`python -m bertserve ...` is the same as the `bertserve` console script."""

from bertserve.cli import main

raise SystemExit(main())
