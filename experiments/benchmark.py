"""`python -m experiments.benchmark` from the repository's root: the `jaxal-benchmark` command (jaxal.cli.benchmark)."""
from jaxal.cli.benchmark import cli

if __name__ == "__main__":
  cli()
