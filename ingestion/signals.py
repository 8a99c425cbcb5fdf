"""Events other apps subscribe to. Ingestion knows nothing of who listens.

points_arrived(dataset_id, batch_id, series_ranges={series_id: (first_ts, last_ts)}) is sent after
the upload's transaction commits, for the series whose points were inserted or changed.
"""

from django.dispatch import Signal

points_arrived = Signal()
