"""Service level objectives: definitions (:mod:`~pipeline.slo.spec`), the pure burn-rate
core (:mod:`~pipeline.slo.burn`) and the window stage's shell around it."""
