"""`python -m ticketing.cli`."""

from ticketing.cli import main

main()
