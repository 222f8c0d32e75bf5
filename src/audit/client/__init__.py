"""The Python client of the audit log service: `from audit.client import AuditClient`.

Needs only urllib3 and orjson: no web framework, ORM or database driver.
"""

from audit.client.client import AuditClient
from audit.client.errors import AuditError, ClientClosed, QueueFull, Unreachable
from audit.client.sending import ClientStats

__all__ = ["AuditClient", "AuditError", "ClientClosed", "ClientStats", "QueueFull", "Unreachable"]
