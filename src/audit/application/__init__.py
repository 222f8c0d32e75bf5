"""Use cases and the ports they need. Knows no Flask, no SQLAlchemy, no container."""
