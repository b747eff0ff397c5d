"""Size limits a user can move with an environment variable, read the same way everywhere.

Each costly route has a default limit (metacells above 50,000 reference cells, streaming above
2^28 stored entries, the diffusion models' spots, the Tangram-style map's entries); the
variable that changes it is named in the limit's docstring and in its error messages.
"""

from __future__ import annotations

import os

from causalged.errors import InputError


def size_limit(variable: str, default: int, *, least: int = 1, meaning: str) -> int:
    """The limit in force: ``default``, or the whole number in ``variable`` (at least ``least``).

    ``meaning`` says what the number counts, for the error a bad value gets.
    """
    raw = os.environ.get(variable)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = least - 1
    if value < least:
        raise InputError(None, f"{variable}={raw!r} is not a whole number of at least {least}",
                         f"set it to {meaning} (default {default:,}), or unset it")
    return value
