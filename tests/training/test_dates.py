"""Tests for training/dates.py, the built-in data set.

The central check is an independent parser written here (regular expressions and the
`calendar` module, none of dates.py's tables) that reads each generated source back
into a date: if it agrees with the target on every sample, the sources say what the
targets claim, weekday included.
"""

import calendar
import datetime
import random
import re
from collections import Counter, defaultdict

import pytest

from training import dates
from training.dates import (
    FORMATS,
    MAX_SOURCE_CHARS,
    default_splits,
    generate_pairs,
    render,
    split_of,
)

MONTH_BY_NAME = {}
for _number in range(1, 13):
    _name = calendar.month_name[_number].lower()
    MONTH_BY_NAME[_name] = MONTH_BY_NAME[_name[:3]] = _number
MONTH_BY_NAME["sept"] = 9
WEEKDAY_BY_NAME = {}
for _number in range(7):
    _name = calendar.day_name[_number].lower()
    WEEKDAY_BY_NAME[_name] = WEEKDAY_BY_NAME[_name[:3]] = _number
# A number with its ordinal suffix, a word, or any character that is not a separator.
TOKEN = re.compile(r"(\d+)(st|nd|rd|th)?|([a-z]+)|[/.,'\- ]|(.)")


def parse_date(source):
    """Reads a day-first date in any of the data set's forms; independent of dates.py."""
    numbers, month, weekday = [], None, None
    for digits, suffix, word, other in TOKEN.findall(source.lower()):
        if other:
            raise ValueError(f"unexpected character {other!r} in {source!r}")
        if digits:
            numbers.append((digits, suffix))
        elif word in MONTH_BY_NAME:
            assert month is None, source
            month = MONTH_BY_NAME[word]
        elif word in WEEKDAY_BY_NAME:
            assert weekday is None, source
            weekday = WEEKDAY_BY_NAME[word]
        elif word:
            assert word in ("the", "of"), source

    def year_of(digits):
        if len(digits) == 4:
            return int(digits)
        assert len(digits) == 2, source
        yy = int(digits)
        return 2000 + yy if yy < 50 else 1900 + yy

    if month is not None:
        # "2026 Nov 29" and "2026-Nov-29" put the year first; all others the day.
        assert len(numbers) == 2, source
        if len(numbers[0][0]) == 4:
            (year_digits, _), (day_digits, suffix) = numbers
        else:
            (day_digits, suffix), (year_digits, _) = numbers
        day, year = int(day_digits), year_of(year_digits)
    elif len(numbers) == 1:
        digits, suffix = numbers[0][0], ""
        assert len(digits) == 8, source
        year, month, day = int(digits[:4]), int(digits[4:6]), int(digits[6:])
    else:
        assert len(numbers) == 3, source
        first, second, third = (n[0] for n in numbers)
        suffix = ""
        if len(first) == 4:
            year, month, day = int(first), int(second), int(third)
        else:
            day, month, year = int(first), int(second), year_of(third)
    date = datetime.date(year, month, day)
    if suffix:
        expected = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        assert suffix == expected, source
    if weekday is not None and weekday != date.weekday():
        raise ValueError(f"{source!r} names the wrong weekday for {date}")
    return date.isoformat()


class NoVariants:
    """An rng that never picks a case or spacing variant, to pin down the plain forms."""

    def random(self):
        return 0.99

    def choice(self, options):
        return options[0]


@pytest.fixture(scope="module")
def sample():
    return generate_pairs(20000, seed=3)


@pytest.fixture(scope="module")
def splits():
    return default_splits(seed=0)


def test_parser_itself_on_hand_written_sources():
    assert parse_date("Sun 29 Nov 2026") == "2026-11-29"
    assert parse_date("29/11/26") == "2026-11-29"
    assert parse_date("3.4.51") == "1951-04-03"
    assert parse_date("the 1st of March 2000") == "2000-03-01"
    with pytest.raises(ValueError, match="wrong weekday"):
        parse_date("Sat 29 Nov 2026")
    with pytest.raises(AssertionError):
        parse_date("November 29nd, 2026")


@pytest.mark.parametrize(
    "template, expected",
    [
        ("{wd} {d} {mon} {yyyy}", "Sun 29 Nov 2026"),
        ("{weekday}, {month} {dth}, {yyyy}", "Sunday, November 29th, 2026"),
        ("{dd}/{mm}/{yy}", "29/11/26"),
        ("{dd}.{mm}.{yyyy}", "29.11.2026"),
        ("{mon} {d} {yyyy}", "Nov 29 2026"),
        ("{yyyy}/{mm}/{dd}", "2026/11/29"),
        ("{dd}-{mon}-{yyyy}", "29-Nov-2026"),
        ("the {dth} of {month} {yyyy}", "the 29th of November 2026"),
        ("{yyyy}{mm}{dd}", "20261129"),
    ],
)
def test_plain_forms_of_one_date(template, expected):
    assert render(datetime.date(2026, 11, 29), template, NoVariants()) == expected


def test_day_padding_ordinals_and_two_digit_years():
    plain = NoVariants()
    assert render(datetime.date(1950, 3, 2), "{d}/{m}/{yy}", plain) == "2/3/50"
    assert render(datetime.date(2049, 3, 2), "{dd}.{mm}.{yy}", plain) == "02.03.49"
    days = (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)
    ordinals = [render(datetime.date(2026, 1, day), "{dth}", plain) for day in days]
    assert ordinals == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st"
    ]


def test_generate_pairs_is_deterministic_and_distinct():
    first = generate_pairs(3000, seed=7)
    assert first == generate_pairs(3000, seed=7)
    assert first != generate_pairs(3000, seed=8)
    assert len(set(first)) == 3000 and len({source for source, _ in first}) == 3000
    assert generate_pairs(0, seed=7) == []


@pytest.mark.parametrize("n", [-1, 2.5, True, "10"])
def test_generate_pairs_rejects_bad_sizes(n):
    with pytest.raises(ValueError, match=f"n={n!r}"):
        generate_pairs(n, seed=0)


def test_every_target_is_the_date_the_source_says(sample):
    for source, target in sample:
        assert parse_date(source) == target, source


def test_lengths_and_range(sample):
    for source, target in sample:
        assert 0 < len(source) <= MAX_SOURCE_CHARS
        assert len(target) == 10
        date = datetime.date.fromisoformat(target)
        assert dates.FIRST_DATE <= date <= dates.LAST_DATE
        assert source == source.strip()


def test_dates_cover_the_range(sample):
    years = Counter(int(target[:4]) for _, target in sample)
    assert min(years) == 1950 and max(years) == 2049
    assert len({target[5:7] for _, target in sample}) == 12
    assert len({target[8:] for _, target in sample}) == 31


def test_format_variety(sample):
    def shape(source):
        return re.sub(r"[A-Za-z]", "a", re.sub(r"\d", "9", source))

    shapes = Counter(shape(source) for source, _ in sample)
    assert len(shapes) >= 20
    # No single shape dominates the data set.
    assert shapes.most_common(1)[0][1] < 0.1 * len(sample)
    assert len(FORMATS) >= 20
    sources = [source for source, _ in sample]
    assert any(s.islower() and re.search("[a-z]", s) for s in sources)
    assert any(s.isupper() for s in sources)
    assert any("  " in s for s in sources)
    assert any(" / " in s for s in sources)
    assert any(re.search(r"\b(mon|tue|wed|thu|fri|sat|sun)\b", s.lower()) for s in sources)


def test_no_source_means_two_dates():
    # Every date of the range in every format: a source (ignoring case and spacing)
    # must never be written for two different dates.
    rng = random.Random(0)
    written = defaultdict(set)
    for ordinal in range(dates.FIRST_DATE.toordinal(), dates.LAST_DATE.toordinal() + 1):
        date = datetime.date.fromordinal(ordinal)
        for template in FORMATS:
            written[" ".join(render(date, template, rng).lower().split())].add(ordinal)
    clashes = {source: ordinals for source, ordinals in written.items() if len(ordinals) > 1}
    assert not clashes, list(clashes.items())[:5]


def test_default_splits_sizes_and_at_least_50k_distinct_pairs(splits):
    assert {name: len(pairs) for name, pairs in splits.items()} == {
        "train": 50000,
        "validation": 2000,
        "test": 2000,
    }
    everything = [pair for pairs in splits.values() for pair in pairs]
    assert len(set(everything)) == 54000


def test_default_splits_are_disjoint(splits):
    sources = {name: {source for source, _ in pairs} for name, pairs in splits.items()}
    assert not sources["train"] & sources["validation"]
    assert not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    for name, pairs in splits.items():
        assert all(split_of(source) == name for source, _ in pairs)


def test_default_splits_are_deterministic(splits):
    again = default_splits(seed=0, train_size=1000, validation_size=100, test_size=100)
    # Smaller sizes give a prefix of the same stream.
    for name, size in (("train", 1000), ("validation", 100), ("test", 100)):
        assert again[name] == splits[name][:size]
    other_seed = default_splits(seed=1, train_size=1000, validation_size=100, test_size=100)
    assert other_seed["train"] != again["train"]


def test_test_set_of_one_seed_is_never_trained_on_with_another(splits):
    other = default_splits(seed=1, train_size=20000, validation_size=0, test_size=0)
    assert other["validation"] == other["test"] == []
    test_sources = {source for source, _ in splits["test"]}
    assert not test_sources & {source for source, _ in other["train"]}


def test_split_of_is_stable_and_about_90_5_5(sample):
    # Fixed expectations: changing the hash would silently reshuffle every test set.
    assert split_of("17 Nov 2026") == "test"
    assert split_of("16 Nov 2026") == "validation"
    assert split_of("29 Nov 2026") == "train"
    counts = Counter(split_of(source) for source, _ in sample)
    assert 0.87 < counts["train"] / len(sample) < 0.93
    assert 0.035 < counts["validation"] / len(sample) < 0.065
    assert 0.035 < counts["test"] / len(sample) < 0.065


@pytest.mark.parametrize("argument", ["train_size", "validation_size", "test_size"])
def test_default_splits_rejects_bad_sizes(argument):
    with pytest.raises(ValueError, match=f"{argument}=-5"):
        default_splits(**{argument: -5})
