"""5-field cron (ebbtide, KEDA, croniter) ↔ Application Auto Scaling ``cron(m h dom mon dow year)``.

AAS follows EventBridge rules: six fields; exactly one of day-of-month / day-of-week is ``?``;
day-of-week numbers run 1-7 from **Sunday** (cron's run 0-7 with 0 and 7 both Sunday) and take no ``/``
step. To avoid the off-by-one, day-of-week is always written with names (``MON-FRI``), both ways. Usage::

    to_aas("45 8 * * MON-FRI")        # 'cron(45 8 ? * MON-FRI *)'
    from_aas("cron(0 19 * * ? *)")    # '0 19 * * *'
"""

from __future__ import annotations

import re

__all__ = ["CronConversionError", "from_aas", "to_aas"]

DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_AAS_CRON = re.compile(r"^cron\((.*)\)$")


class CronConversionError(ValueError):
    """The expression cannot be said in the other dialect; the message says why and what to write instead."""


def to_aas(cron: str) -> str:
    """``'45 8 * * MON-FRI'`` → ``'cron(45 8 ? * MON-FRI *)'``."""
    fields = cron.split()
    if len(fields) != 5:
        raise CronConversionError(
            f"cron = {cron!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
        )
    minute, hour, dom, month, dow = (f.upper() for f in fields)
    days = _cron_days(dow, cron)
    if days is None:
        return f"cron({minute} {hour} {dom} {month} ? *)"
    if dom not in ("*", "?"):
        raise CronConversionError(
            f"cron = {cron!r}: restricts both day-of-month and day-of-week (cron means either); AAS allows "
            "only "
            "one: split it into two schedule actions"
        )
    return f"cron({minute} {hour} ? {month} {days} *)"


def from_aas(expression: str) -> str:
    """``'cron(45 8 ? * MON-FRI *)'`` → ``'45 8 * * MON-FRI'``; refuses ``rate()``, ``at()``, fixed years."""
    match = _AAS_CRON.match(expression.strip())
    if match is None:
        raise CronConversionError(
            f"schedule = {expression!r}: only cron(...) schedules map to ebbtide (rate() and at() do not)"
        )
    fields = match.group(1).split()
    if len(fields) != 6:
        raise CronConversionError(f"schedule = {expression!r}: AAS cron needs 6 fields, got {len(fields)}")
    minute, hour, dom, month, dow, year = (f.upper() for f in fields)
    if year not in ("*", "?"):
        raise CronConversionError(
            f"schedule = {expression!r}: a fixed year ({year}) has no 5-field cron form"
        )
    if (dom == "?") == (dow == "?"):
        raise CronConversionError(
            f"schedule = {expression!r}: exactly one of day-of-month/day-of-week must be '?'"
        )
    if dow == "?":
        return f"{minute} {hour} {dom} {month} *"
    days = _aas_days(dow, expression)
    return f"{minute} {hour} * {month} {days}"


def _cron_days(field: str, whole: str) -> str | None:
    """Day-of-week of a 5-field cron as AAS names; ``None`` when every day matches."""
    if field in ("*", "?"):
        return None
    if "#" in field:
        day, _, nth = field.partition("#")
        return f"{DAY_NAMES[_day_number(day, whole, sunday=0) % 7]}#{nth}"
    days: set[int] = set()
    for part in field.split(","):
        days |= _expand(part, whole, sunday=0)
    if days == set(range(7)):
        return None
    return _compress(days)


def _aas_days(field: str, whole: str) -> str:
    if field == "*":
        return "*"
    if "#" in field:
        day, _, nth = field.partition("#")
        return f"{DAY_NAMES[_day_number(day, whole, sunday=1)]}#{nth}"
    if "/" in field or "L" in field:
        raise CronConversionError(f"schedule = {whole!r}: day-of-week {field!r} has no 5-field cron form")
    days: set[int] = set()
    for part in field.split(","):
        days |= _expand(part, whole, sunday=1)
    return "*" if days == set(range(7)) else _compress(days)


def _expand(part: str, whole: str, *, sunday: int) -> set[int]:
    """One comma-separated piece (``MON-FRI``, ``1-5``, ``*/2``, ``3``) → days, 0 = Sunday .. 6 = Saturday."""
    base, _, step_text = part.partition("/")
    step = int(step_text) if step_text.isdigit() else 1
    if step_text and not step_text.isdigit():
        raise CronConversionError(f"cron = {whole!r}: bad step {step_text!r} in day-of-week")
    if base == "*":
        return set(range(0, 7, step))
    first, _, last = base.partition("-")
    lo = _day_number(first, whole, sunday=sunday)
    hi = _day_number(last, whole, sunday=sunday) if last else lo
    if hi < lo:
        raise CronConversionError(f"cron = {whole!r}: day-of-week range {base!r} runs backwards")
    return {n % 7 for n in range(lo, hi + 1, step)}


def _day_number(text: str, whole: str, *, sunday: int) -> int:
    """A day name or number → 0 = Sunday .. 6 = Saturday (7 kept as 7 for cron's Sunday-at-the-end ranges)."""
    if text in DAY_NAMES:
        return DAY_NAMES.index(text)
    if text.isdigit():
        number = int(text)
        limit = (0, 7) if sunday == 0 else (1, 7)
        if limit[0] <= number <= limit[1]:
            return number - sunday
    raise CronConversionError(f"cron = {whole!r}: {text!r} is not a day of the week")


def _compress(days: set[int]) -> str:
    """{1,2,3,4,5} → 'MON-FRI'; {1,3,5} → 'MON,WED,FRI'; runs of three or more become ranges."""
    ordered = sorted(days)
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}")
        else:
            parts.extend(DAY_NAMES[d] for d in run)
    return ",".join(parts)
