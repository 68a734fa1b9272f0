"""The evidence chart of a stored analysis, for the API and for Slack alike.

Rendered from the stored ``chart_data`` on first request and cached in the row, so the
API's ``chart.png`` and the chart uploaded into an incident's Slack thread are one image
rendered once (matplotlib costs about a second of CPU per chart).
"""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from agent.models import Analysis
from agent.service.runner import render_chart
from agent.snapshot import Snapshot
from agent.store import queries


def evidence_chart(sessions: sessionmaker, analysis_id: str) -> bytes | None:
    """The PNG, or None when there is no such finished analysis or nothing to draw."""
    with sessions.begin() as session:
        found = queries.get_chart(session, analysis_id)
        record = queries.get_analysis(session, analysis_id) if found is not None else None
    if found is None or record is None or record.result is None:
        return None
    png, material = found
    if png is not None:
        return png
    if material is None:
        return None
    png = render_chart(
        Analysis.model_validate_json(record.result), Snapshot.model_validate_json(material)
    )
    with sessions.begin() as session:
        queries.store_chart(session, analysis_id, png)
    return png
