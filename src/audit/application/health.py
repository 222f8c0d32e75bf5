"""CheckReadiness: does storage answer?"""

from __future__ import annotations

from audit.application.ports import UnitOfWorkFactory


class CheckReadiness:
    """Raise StorageUnavailable unless storage answers a trivial query."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self) -> None:
        with self._uow() as uow:
            uow.ping()
