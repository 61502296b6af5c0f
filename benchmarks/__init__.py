"""Benchmarks, load generators and self-tests. Never imported by the product: only the spec's
CLI entry points (`--benchmark`, `--test`) reach in here, from a source checkout."""
