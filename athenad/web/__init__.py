"""``athenactl web``: a dashboard and a JSON API over a home's jobs (Starlette).

Nothing here is imported until the command runs, so ``athenactl --help`` stays fast
and the ``web`` extra stays optional.
"""
