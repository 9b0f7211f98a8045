"""The built-in data set: dates written the ways people write them -> ISO 8601.

    "Sun 29 Nov 2026", "sunday, november 29th, 2026", "29/11/26", "29.11.2026",
    "Nov 29 2026", "2026/11/29", "29-NOV-2026", "the 29th of November 2026"
        -> "2026-11-29"

It is generated offline by this code (standard library only), deterministically from
a seed, so `python -m kit demo` needs no download and every machine trains on the same
pairs. A model learns it in minutes on a CPU, and exact match is a meaningful score.

Every source determines its date without ambiguity, so that the task has one right
answer:

- Numbers are day first (29/11/2026, 29.11.26): the US month-first order is never
  generated, so "03/04/2026" can only mean 3 April. Year-first forms use four-digit
  years (2026/11/29, 20261129).
- Dates lie in 1950-01-01 .. 2049-12-31, and a two-digit year yy means 20yy when
  yy < 50 and 19yy otherwise (the pivot is `TWO_DIGIT_YEAR_PIVOT`).
- A weekday, when written, is the true weekday of that date.
- Month and weekday names are English and spelled from the tables below, not with
  `strftime`, whose names depend on the machine's locale.

Sources are at most `MAX_SOURCE_CHARS` characters; targets are always "YYYY-MM-DD".
"""

import datetime
import hashlib
import random

MAX_SOURCE_CHARS = 40
TARGET_CHARS = 10
FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)
TWO_DIGIT_YEAR_PIVOT = 50  # yy < 50 -> 20yy, yy >= 50 -> 19yy

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Each format is a str.format template over the fields made by `_fields`:
#   d 9, dd 09, dth 9th, m 3, mm 03, yy 26, yyyy 2026,
#   mon Nov, month November, wd Sun, weekday Sunday.
NUMERIC_FORMATS = (
    "{dd}/{mm}/{yyyy}",
    "{d}/{m}/{yyyy}",
    "{dd}/{mm}/{yy}",
    "{d}/{m}/{yy}",
    "{dd}.{mm}.{yyyy}",
    "{d}.{m}.{yyyy}",
    "{dd}.{mm}.{yy}",
    "{dd}-{mm}-{yyyy}",
    "{dd}-{mm}-{yy}",
    "{yyyy}-{mm}-{dd}",
    "{yyyy}/{mm}/{dd}",
    "{yyyy}.{mm}.{dd}",
    "{yyyy}{mm}{dd}",
)
NAMED_FORMATS = (
    "{d} {mon} {yyyy}",
    "{dd}-{mon}-{yyyy}",
    "{dd}-{mon}-{yy}",
    "{d} {mon} '{yy}",
    "{d} {month} {yyyy}",
    "{dth} {month} {yyyy}",
    "{dth} of {month} {yyyy}",
    "the {dth} of {month} {yyyy}",
    "{mon} {d} {yyyy}",
    "{mon} {d}, {yyyy}",
    "{month} {d}, {yyyy}",
    "{month} {dth}, {yyyy}",
    "{month} {dth} {yyyy}",
    "{yyyy} {mon} {d}",
    "{yyyy}-{mon}-{dd}",
    "{wd} {d} {mon} {yyyy}",
    "{wd}, {d} {mon} {yyyy}",
    "{wd} {mon} {d} {yyyy}",
    "{weekday} {d} {month} {yyyy}",
    "{weekday}, {month} {dth}, {yyyy}",
    "{weekday}, {dth} {month} {yyyy}",
    "{weekday} the {dth} of {month} {yyyy}",
    "{weekday} {dd}/{mm}/{yyyy}",
)
FORMATS = NUMERIC_FORMATS + NAMED_FORMATS

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {"train": 50000, "validation": 2000, "test": 2000}


def to_iso(date: datetime.date) -> str:
    """The target text: "YYYY-MM-DD"."""
    return date.isoformat()


def render(date: datetime.date, template: str, rng: random.Random) -> str:
    """Writes `date` with `template`, choosing the case and spacing variants with `rng`.

    Variants: abbreviations with or without a period ("Nov."/"Nov", "Sun."/"Sun",
    and "Sept" for September); Title, lower or UPPER case; spaces around "/" and "-"
    separators; a doubled space between words; no space after a comma.
    """
    fields = _fields(date, rng, dotted_ok="{mon}-" not in template)
    text = template.format(**fields)
    if template in NUMERIC_FORMATS:
        if rng.random() < 0.15:
            text = text.replace("/", " / ").replace("-", " - ")
        return text
    case = rng.random()
    if case < 0.25:
        text = text.lower()
    elif case < 0.4:
        text = text.upper()
    spacing = rng.random()
    if spacing < 0.1:
        gaps = [i for i, c in enumerate(text) if c == " "]
        if gaps:
            at = rng.choice(gaps)
            text = text[:at] + " " + text[at:]
    elif spacing < 0.15:
        text = text.replace(", ", ",")
    return text


def _fields(date, rng, dotted_ok):
    """The values that templates refer to, for one date.

    `dotted_ok` is False where a period after the month would look wrong ("29-Nov.-2026").
    """
    mon = MONTHS[date.month - 1][:3]
    if date.month == 9 and rng.random() < 0.3:
        mon = "Sept"
    if rng.random() < 0.2 and dotted_ok:
        mon += "."
    wd = WEEKDAYS[date.weekday()][:3]
    if rng.random() < 0.2:
        wd += "."
    return {
        "d": str(date.day),
        "dd": f"{date.day:02d}",
        "dth": _ordinal(date.day),
        "m": str(date.month),
        "mm": f"{date.month:02d}",
        "yy": f"{date.year % 100:02d}",
        "yyyy": f"{date.year:04d}",
        "mon": mon,
        "month": MONTHS[date.month - 1],
        "wd": wd,
        "weekday": WEEKDAYS[date.weekday()],
    }


def _ordinal(day):
    """1 -> "1st", 2 -> "2nd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _pair_stream(seed):
    """An endless, seed-determined stream of (source, target) pairs (with repeats)."""
    rng = random.Random(seed)
    first, span = FIRST_DATE.toordinal(), LAST_DATE.toordinal() - FIRST_DATE.toordinal() + 1
    while True:
        date = datetime.date.fromordinal(first + rng.randrange(span))
        source = render(date, rng.choice(FORMATS), rng)
        if len(source) <= MAX_SOURCE_CHARS:
            yield source, to_iso(date)


def generate_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Returns `n` distinct (source, target) pairs, the same ones for the same seed.

    The space holds millions of distinct sources (36,524 dates times dozens of formats
    times their variants), so any practical `n` is reachable.
    """
    _check_size("n", n)
    pairs, seen = [], set()
    stream = _pair_stream(seed)
    while len(pairs) < n:
        pair = next(stream)
        if pair[0] not in seen:
            seen.add(pair[0])
            pairs.append(pair)
    return pairs


def split_of(source: str) -> str:
    """The split ("train", "validation" or "test") that a source string belongs to.

    Decided by a stable hash of the text alone (blake2b, not Python's salted `hash`):
    about 90% train, 5% validation, 5% test. Since neither the seed nor the requested
    sizes enter it, a source is in the same split in every run, and the test set of
    one run is never in the training set of another. `training.data` uses the same
    rule for TSV files.
    """
    digest = hashlib.blake2b(source.encode("utf-8"), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 20
    if bucket == 0:
        return "test"
    if bucket == 1:
        return "validation"
    return "train"


def default_splits(
    seed: int = 0,
    train_size: int = DEFAULT_SIZES["train"],
    validation_size: int = DEFAULT_SIZES["validation"],
    test_size: int = DEFAULT_SIZES["test"],
) -> dict[str, list[tuple[str, str]]]:
    """The built-in data set: {"train": [...], "validation": [...], "test": [...]}.

    Each value is a list of distinct (source, target) pairs. The splits are disjoint
    (`split_of` assigns every source to one of them), and each split is filled, in
    order, from one seed-determined stream, so a smaller size gives a prefix of a
    larger one.
    """
    sizes = {"train": train_size, "validation": validation_size, "test": test_size}
    for name, size in sizes.items():
        _check_size(f"{name}_size", size)
    splits = {name: [] for name in SPLITS}
    seen = set()
    stream = _pair_stream(seed)
    while any(len(splits[name]) < sizes[name] for name in SPLITS):
        source, target = next(stream)
        if source in seen:
            continue
        seen.add(source)
        name = split_of(source)
        if len(splits[name]) < sizes[name]:
            splits[name].append((source, target))
    return splits


def _check_size(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0. Received: {name}={value!r}")
