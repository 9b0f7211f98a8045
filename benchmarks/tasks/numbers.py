"""`numbers`: cardinal numbers spelled out by num2words in six languages -> digits.

The spellings are num2words' rules, written by its contributors for each language
(German writes one long compound, French "soixante-dix-huit", English "and"). Numbers
below 10^6 are drawn half uniformly (mostly six digits, long sources: about 46
characters and 5 words on average) and half log-uniformly (every order of magnitude,
so small numbers too); each number is written in one language drawn at random, and
no test number occurs in training, in any language.
"""

import collections
import random

from benchmarks.tasks.common import Task, clean

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")
LIMIT = 10 ** 6


def draw_numbers(count, rng):
    """`count` distinct numbers in [0, 10^6): half uniform, half log-uniform."""
    numbers = []
    seen = set()
    while len(numbers) < count:
        if rng.random() < 0.5:
            number = rng.randrange(LIMIT)
        else:
            number = int(10 ** rng.uniform(0, 6)) - 1
        if number not in seen:
            seen.add(number)
            numbers.append(number)
    return numbers


def build(train_size, test_size, seed):
    from num2words import num2words

    rng = random.Random(seed)
    numbers = draw_numbers(train_size + test_size, rng)
    rng.shuffle(numbers)  # train and test from one distribution

    def pair(number):
        return clean(num2words(number, lang=rng.choice(LANGUAGES))), str(number)

    return ([pair(n) for n in numbers[:train_size]],
            [pair(n) for n in numbers[train_size:]])


def baselines(train, test):
    constant = collections.Counter(target for _, target in train).most_common(1)[0][0]
    return {"most frequent target": lambda source: constant}


TASK = Task(
    name="numbers",
    shape="spoken number (6 languages) -> digits",
    package="num2words",
    module="num2words",
    licence="LGPL-2.1 (num2words; the spellings are its rules' output)",
    kind="word",
    sizes={"small": (1000, 100), "full": (20000, 2000)},
    build=build,
    baselines=baselines,
)
