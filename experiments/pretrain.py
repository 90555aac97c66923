"""`python -m experiments.pretrain` from the repository's root: the `jaxal-pretrain` command."""
from jaxal.cli.pretrain import cli

if __name__ == "__main__":
  cli()
