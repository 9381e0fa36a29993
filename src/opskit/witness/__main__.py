"""`python -m opskit.witness`: the `opskit-witness` program."""

from opskit.cli.witness import main

main()
