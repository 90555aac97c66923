"""The benchmark workloads of `jaxal-benchmark` (`python -m experiments.benchmark`), one module each, and their shared
helpers (`common`)."""
