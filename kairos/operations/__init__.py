"""Operating a deployed stage: finding it (:mod:`.deployed`), judging freshness (:mod:`.freshness`),
and one module per command family (status, runs, logs, invoke, pause/resume)."""
