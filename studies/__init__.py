"""Long studies that run outside CI (minutes of CPU each): reproducible measurements whose
numbers are recorded in ``docs/``. Run them from the repository root as modules, e.g.
``.venv/bin/python -m studies.difficulty --help``, so the checkout's code is what runs."""
