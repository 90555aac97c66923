"""`python -m experiments.report` from the repository's root: the `jaxal-report` command (jaxal.cli.report)."""
from jaxal.cli.report import cli

if __name__ == "__main__":
  cli()
