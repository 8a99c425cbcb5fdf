"""Events other apps subscribe to. Forecasting knows nothing of who listens.

crossings_predicted(crossing_ids=[...]) is sent after the transaction that stored new
``ForecastCrossing`` rows commits (predicted incidents: alerting notifies on them).

forecasts_made(config_id=..., forecast_ids=[...]) is sent after the transaction that stored a run's new
latest forecasts commits (not a backfill's past ones), whether they cross or not: what an earlier
forecast predicted and these no longer do can be withdrawn.
"""

from django.dispatch import Signal

crossings_predicted = Signal()
forecasts_made = Signal()
