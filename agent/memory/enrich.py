"""What memory adds to a ranked draft before it is summarized: the prior and the runbooks.

:func:`enricher` builds the ``enrich`` hook of :func:`agent.engine.pipeline.analyze` for one
incident: it fingerprints the draft, recalls the closest past analyses (the store's
:class:`~agent.store.memory.Memory`, or anything with the same shape), applies the bounded
prior (:mod:`agent.memory.prior`) and cites the matching runbook sections (``R1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agent.memory.fingerprint import fingerprint_of
from agent.memory.prior import apply_prior
from agent.memory.recall import Recall
from agent.memory.runbooks import RunbookLibrary, cite_runbooks
from agent.models import Analysis, Topology

PRIOR_LOOKUP = 5  # past analyses the prior looks at


def enricher(
    *,
    recall: Recall | None,
    runbooks: RunbookLibrary | None,
    topology: Topology | None = None,
    labels: Mapping[str, str] | None = None,
    runbook_url: str | None = None,
    redact: Callable[[str], str] | None = None,
) -> Callable[[Analysis], Analysis]:
    """The hook for one incident; ``recall`` None: no prior; ``runbooks`` None: no R1."""

    def enrich(draft: Analysis) -> Analysis:
        if recall is not None and draft.candidates and not draft.insufficient_evidence:
            fp = fingerprint_of(draft, topology, labels, redact)
            draft = apply_prior(draft, recall(fp, PRIOR_LOOKUP, None))
        if runbooks is not None or runbook_url:
            cited = cite_runbooks(runbooks, draft, runbook_url, redact)
            if cited:
                draft = draft.model_copy(update={"runbooks": cited})
        return draft

    return enrich
