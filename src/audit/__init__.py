"""A tamper-evident, multi-tenant audit log service."""
