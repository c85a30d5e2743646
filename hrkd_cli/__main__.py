"""`python -m hrkd_cli` (and `torchrun -m hrkd_cli`) run the same CLI as `hrkd`."""

from hrkd_cli.cli import main

main()
