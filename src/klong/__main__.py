"""`python -m klong` runs the command line."""

from klong.cli import main

main()
