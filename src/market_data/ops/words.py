"""How a setting is spelt, whatever reads it (the config file, the environment, the
command line): one definition each, so that no two readers disagree."""

import re

#: A symbol as the exchange spells it (upper case; the ring's field holds 24 bytes).
SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
#: Words that switch a setting on or off (lower-cased first).
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
