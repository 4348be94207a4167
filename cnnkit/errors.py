"""User-facing errors.

Anything a user can cause (a missing path, an unknown model name, an input too small
for a network) raises :class:`CnnkitError` with one sentence naming the problem and the
fix. The CLI prints that sentence on one line and exits with status 2 - no traceback.
"""

from __future__ import annotations


class CnnkitError(Exception):
    """A problem with the user's input, explained in one line (problem + fix)."""
