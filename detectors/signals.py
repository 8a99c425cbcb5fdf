"""Sent after the transaction that stored them commits, with the incidents' ids.

- anomalies_created(run_id, anomaly_ids): new incidents (an alarm each);
- incident_resolved(run_id, anomaly_ids): incidents that closed (recovered or re-baselined);
- incident_escalated(run_id, anomaly_ids): open incidents a later run extended to a higher severity.

They are sent with `send_robust`: a failing receiver is logged and never fails the run.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

logger = logging.getLogger(__name__)

anomalies_created = Signal()
incident_resolved = Signal()
incident_escalated = Signal()


def send_after_commit(signal: Signal, *, sender, run_id: int, anomaly_ids: list[int]) -> None:
    if not anomaly_ids:
        return

    def send() -> None:
        for receiver, result in signal.send_robust(sender=sender, run_id=run_id, anomaly_ids=anomaly_ids):
            if isinstance(result, Exception):
                logger.error("signal receiver failed", extra={"receiver": repr(receiver), "error": repr(result)})

    transaction.on_commit(send)
