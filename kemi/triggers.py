"""Callback triggers: which calls to an access number become a promised callback.

The counters live in Kamailio's shared-memory hash tables (htable), locked per key, so every worker
process sees the same counts. Expiries are set per item from the settings.
"""

import time

import KSR

REPEAT_TABLE = "trigger_repeat"  # caller -> 1 while a repeat gets no second callback
CALLER_TABLE = "trigger_caller"  # caller -> callbacks in the current hour
RATE_TABLE = "trigger_rate"  # second -> triggers admitted in that second, platform wide

# Refusal reasons (also metric labels)
REPEAT = "repeat"
CALLER_LIMIT = "caller_limit"
PLATFORM_LIMIT = "platform_limit"
UNKNOWN_CALLER = "unknown_caller"


def _count_within(table, key, limit, lifetime):
    """Add one to the item unless that exceeds limit; True if it was added. The first one sets its lifetime."""
    KSR.htable.sht_lock(table, key)
    try:
        current = KSR.htable.sht_get(table, key)
        if current is None:
            KSR.htable.sht_setxi(table, key, 1, lifetime)
            return True
        if int(current) >= limit:
            return False
        KSR.htable.sht_inc(table, key)
        return True
    finally:
        KSR.htable.sht_unlock(table, key)


def admit(settings, caller):
    """None if this trigger earns a callback, else the reason it does not."""
    # The platform-wide budget counts every trigger, repeats included: a flood spends it either way.
    if not _count_within(RATE_TABLE, str(int(time.time())), settings.triggers_per_second, 2):
        return PLATFORM_LIMIT
    window = settings.triggers_repeat_window_seconds
    if window > 0 and not _count_within(REPEAT_TABLE, caller, 1, window):
        return REPEAT
    if not _count_within(CALLER_TABLE, caller, settings.triggers_per_caller_per_hour, 3600):
        return CALLER_LIMIT
    return None


def forget(caller):
    """Undo what `admit` counted for a trigger whose callback could not be promised after all."""
    KSR.htable.sht_rm(REPEAT_TABLE, caller)
    KSR.htable.sht_lock(CALLER_TABLE, caller)
    try:
        current = KSR.htable.sht_get(CALLER_TABLE, caller)
        if current is not None and int(current) > 0:
            KSR.htable.sht_seti(CALLER_TABLE, caller, int(current) - 1)
    finally:
        KSR.htable.sht_unlock(CALLER_TABLE, caller)
