"""Detection: per-series anomaly scoring with onsets, and log template mining."""
