"""The package's one base exception: every error churnclv raises on purpose derives from
:class:`ChurnclvError`, so a caller (the CLI, a notebook, the HTTP service) catches one type.

Each subclass also keeps the built-in base it had (``ValueError`` for bad input, ``RuntimeError``
for a failed run), so ``except ValueError`` in existing code still works. Messages name the column,
field or key, the rule and the fix; they never hold customer data or an unredacted URL.
"""

from __future__ import annotations

__all__ = ["ChurnclvError"]


class ChurnclvError(Exception):
    """An error churnclv raised on purpose, with a message a user can act on."""
