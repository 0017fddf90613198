"""Keep the cyclic garbage collector off what start-up made.

A service process imports every module, class and function it will use, and
builds its configuration, outputs and per-symbol state, before its first frame. All of it
lives as long as the process, yet each full collection walked it again: 17-40
ms in a worker with 100 books, a stall of every feed and output at once.
``gc.freeze()`` moves it to the permanent generation, which no collection
visits (the same worker's full collections then took 0.6 ms).
"""

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> int:
    """Collect what start-up left as garbage, then freeze the rest; returns how many
    objects were frozen.

    Objects frozen here and dropped later in a reference cycle are never freed: a
    bounded cost, since nothing made after this call is frozen.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "froze %d start-up objects out of the garbage collector's walks",
        frozen,
        extra={"frozen_objects": frozen},
    )
    return frozen
