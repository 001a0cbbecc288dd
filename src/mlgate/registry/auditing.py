"""The audit log's operations: verify the chain and its checkpoints, export it, sign its head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mlgate.registry import audit, store
from mlgate.registry.context import RegistryContext
from mlgate.registry.roles import Action


class Auditing:
    """Reads and checkpoints of the audit log (entries are appended by the context)."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def verify(self, public_key: Any = None) -> audit.AuditVerification:
        """Verify the audit chain and its checkpoints (against ``public_key``, else the
        public key the registry recorded at set-up)."""
        key = public_key if public_key is not None else self.ctx.org_public_key()
        with self.ctx.read(Action.READ) as conn:
            return audit.verify_log(audit.read_entries(conn), audit.read_checkpoints(conn), key)

    def export(self) -> Iterator[str]:
        """The audit log as JSON lines."""
        with self.ctx.read(Action.READ) as conn:
            entries = list(audit.read_entries(conn))
            points = audit.read_checkpoints(conn)
        yield from audit.export_lines(entries, points)

    def checkpoint(self) -> audit.Checkpoint:
        """Sign the current head of the audit log now."""
        key = self.ctx.org_key()
        with self.ctx.write(Action.ADMINISTER) as conn:
            head = self.ctx.append_audit(conn, "checkpoint", "registry", {}, checkpoint=False)
            return audit.checkpoint(conn, head, key, store.now())

    def changed_since(self, seq: int, ignored: str = "admission") -> tuple[int, bool]:
        """The audit head's seq and whether anything but ``ignored`` entries was appended
        after ``seq``: every change of the registry appends in its own transaction, so this
        tells a cache of registry reads whether it is still fresh (the webhook's)."""
        with self.ctx.read(Action.READ) as conn:
            return audit.changed_since(conn, seq, ignored)

    def record_admission(self, subject: str, details: Mapping[str, Any]) -> None:
        """Record a Kubernetes admission decision about ``subject`` (issue 12). A reader may:
        the webhook only reads the registry, and every decision it takes is audited."""
        with self.ctx.write(Action.READ) as conn:
            self.ctx.append_audit(conn, "admission", subject, details)
