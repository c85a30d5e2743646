"""`python -m hrkd_cli.completions`: regenerate the shipped completion scripts."""

from hrkd_cli.completions import write_all

for p in write_all():
    print(p)
