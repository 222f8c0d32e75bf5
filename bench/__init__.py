"""Benchmarks of the audit log service against baselines measured in the same run."""
