"""The HTTP service: API, Alertmanager webhook, durable analysis jobs, storage, metrics."""
