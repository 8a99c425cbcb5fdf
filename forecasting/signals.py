"""Events other apps subscribe to. Forecasting knows nothing of who listens.

crossings_predicted(crossing_ids=[...]) is sent after the transaction that stored new
``ForecastCrossing`` rows commits (predicted incidents: alerting notifies on them).
"""

from django.dispatch import Signal

crossings_predicted = Signal()
