"""anomalies_created(run_id, anomaly_ids) is sent after the transaction that stored them commits."""

from django.dispatch import Signal

anomalies_created = Signal()
