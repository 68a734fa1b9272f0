"""Incident memory: "have we seen this before, and what fixed it?".

Every finished analysis gets a deterministic, model-free :class:`~agent.memory.fingerprint.
Fingerprint` (root cause, the shape of its evidence, masked log templates, the alert), stored
with it. The k most similar past analyses come back with the reasons they match and what the
team said about them (verdict, resolution): :mod:`agent.memory.index` answers that in
milliseconds over 100,000 fingerprints. A confirmed past root cause with a close fingerprint
adds one bounded evidence item (``P1``) to that candidate (:mod:`agent.memory.prior`), and the
team's runbooks are matched and cited as ``R1`` (:mod:`agent.memory.runbooks`).

::

    analysis ──► fingerprint ──► index.similar(k) ──► matches (+ verdict, resolution)
                                                          │
                    draft ◄── prior (P1, capped) ◄────────┘
                    draft ◄── runbooks (R1)
"""
