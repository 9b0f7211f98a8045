"""Real public tasks, made by people and installed offline from PyPI packages, to
measure the kit as a new user runs it (`--data` and `--out`, nothing else).

    python -m benchmarks.tasks [NAME ...] [--workdir DIR] [--size small|full] [--build-only]

No data is committed: each task's builder writes its `train.tsv` and `test.tsv` from
the installed package at run time (the packages are in requirements.txt; `g2p_de`'s is
too large and that task skips without it).
"""

from benchmarks.tasks.messages import UI_FR, UI_ZH
from benchmarks.tasks.numbers import TASK as NUMBERS
from benchmarks.tasks.words import G2P_DE, G2P_EN, HYPHENATION, INFLECTION_EN, PINYIN

TASKS = {task.name: task for task in (NUMBERS, G2P_EN, G2P_DE, INFLECTION_EN,
                                       HYPHENATION, PINYIN, UI_FR, UI_ZH)}
