"""The analysis engine: one snapshot in, one :class:`~agent.models.Analysis` out, no I/O.

The stages, in the order :func:`analyze` runs them:

1. **window**: the incident window (baseline, then incident) from the alert or request time;
2. **detect** (:mod:`agent.engine.detect`): per-series anomaly scores with onsets, and log
   templates that burst or appear;
3. **hypotheses** (:mod:`agent.engine.hypothesis`): the fault type each service's findings
   point to; **changes**: each change in the window judged canary style on its own pods
   (:mod:`agent.engine.canary`), then with its callers and callees in view and what else
   explains them (:mod:`agent.engine.neighbours`, :mod:`agent.engine.hood`,
   :mod:`agent.engine.outages`, :mod:`agent.engine.trouble`);
4. **call-graph explain** (:mod:`agent.engine.callgraph`): a service waiting on an anomalous
   dependency is discounted, one whose callers suffer is consistent with a cause;
5. **score** (:mod:`agent.engine.service_score`, :mod:`agent.engine.rank`): the ranked
   candidates, then citable evidence for them (:mod:`agent.engine.evidence`);
6. **Analysis** (:mod:`agent.engine.pipeline`): the draft with a summarizer's words on top.
"""

from agent.engine.pipeline import analyze

__all__ = ["analyze"]
