"""How a setting is spelt, whatever reads it (the config file, the environment, the
command line): one definition each, so that no two readers disagree."""

import json
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

#: A symbol as the exchange spells it (upper case; the ring's field holds 24 bytes).
SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
#: Words that switch a setting on or off (lower-cased first).
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


def url_problem(url: str, schemes: Sequence[str]) -> str | None:
    """What is wrong with ``url`` as an address of one of ``schemes``, as a phrase that
    follows it (None: nothing)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parts.scheme not in schemes:
        return f"has scheme {json.dumps(parts.scheme)}, expected {' or '.join(schemes)}"
    if not parts.hostname:
        return "names no host"
    return None
