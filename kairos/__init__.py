"""Kairos: scheduled jobs on AWS from one typed registry file.

The flow, end to end:

1. ``tasks.yaml`` is read and parsed into frozen pydantic models (:mod:`kairos.config`); every
   entry's ``task_type`` and ``params`` are checked against the task-type catalog
   (:mod:`kairos.catalog`), built from the Python registry in ``lambdas/python`` and the Node.js
   manifest in ``lambdas/node``.
2. A pure plan of what to create for one stage is derived from the models (:mod:`kairos.plan`).
3. The CDK app (``app.py``, :mod:`kairos_stack`) maps the plan onto constructs: one
   ``ScheduledTask`` per task, plus the tables, the dead-letter queue and the schedule group.
4. At run time each schedule sends its event to the task's function, whose handler resolves the
   ``task_type`` in the registry, runs it and records the run (``kairos_runtime``).
5. The ``kairos`` CLI (:mod:`kairos.cli`) works from the same models and plan.
"""
