"""The benchmark workloads of `python -m experiments.benchmark`, one module each, and their shared
helpers (`common`)."""
