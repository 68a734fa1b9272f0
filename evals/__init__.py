"""Incident simulator, eval suites, metrics and the offline evaluation runner."""
