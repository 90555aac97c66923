"""`python -m experiments.label` from the repository's root: the `jaxal-label` command (jaxal.cli.label)."""
from jaxal.cli.label import cli

if __name__ == "__main__":
  cli()
