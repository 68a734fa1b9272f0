"""rca-agent: root cause analysis for on-call teams."""

__version__ = "0.1.0"
