"""`python -m clampdown` is the `clampdown` command."""

from clampdown.cli import app

app()
