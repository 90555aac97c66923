"""`python -m experiments.run` from the repository's root: the `jaxal-run` command (jaxal.cli.run)."""
from jaxal.cli.run import cli

if __name__ == "__main__":
  cli()
