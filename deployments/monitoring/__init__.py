"""Monitoring: snapshots of traffic, drift, data quality, live performance and review health;
alerts; ground-truth feedback; retraining (challenger vs champion)."""
