"""Packaging of the Lambda Python functions, without Docker and without CDK.

One module per concern: :mod:`~kairos_build.platforms` (wheel tags, markers), :mod:`~kairos_build.distributions`
(installed dist metadata, the dependency walk), :mod:`~kairos_build.elf`, :mod:`~kairos_build.trimming`,
:mod:`~kairos_build.pip`, :mod:`~kairos_build.bytecode`, :mod:`~kairos_build.import_check`,
:mod:`~kairos_build.builder` (cache keys, the tree cache), :mod:`~kairos_build.locks` (locks read) and
:mod:`~kairos_build.lock_writer` (locks written; ``python -m kairos_build`` is ``make lock``).
The project's own choices (its dependency groups, what the Lambda runtime provides, source-only
packages) are in :mod:`~kairos_build.project`; the project root is passed in, never imported.

Nothing here imports CDK or the ``kairos`` app: the CDK glue is ``kairos_stack/lambda_bundling.py``
and ``kairos_stack/code_assets.py``.
"""
