"""`--data SPEC`: where the (source, target) text pairs for training come from.

    default                  the built-in dates data set (training/dates.py), offline
    tsv:PATH                 a UTF-8 file, one "source<TAB>target" pair a line
    tfds:NAME[/CONFIG]       a TensorFlow Datasets text pair set that is already on
                             disk, e.g. tfds:ted_hrlr_translate/pt_to_en

Every spec gives the same thing, a `Pairs` with train, validation and test lists, so
the rest of training never looks at where the data came from. Any problem with the
data is a `DataError` whose message is one line, for the command line to print.
"""

import dataclasses
import os
import re

from kit.tsv import TsvError, check_regular_file, fingerprint, parse_tsv, read_bytes

from . import dates

MAX_REPORTED_LINES = 10  # how many malformed line numbers a Pairs or an error lists
SPLITS = dates.SPLITS
ACCEPTED_SPECS = "'default', 'tsv:PATH' or 'tfds:NAME[/CONFIG]'"

# A TFDS name as tfds.load reads it, minus community namespaces ("huggingface:..."):
# those fetch their code and data from the network at load time.
_TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.\-]+)?(:\d+\.\d+\.\d+)?")


class DataError(ValueError):
    """The data named by a spec cannot be used; the message is one line for the user."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """A --data value whose form `check_spec` has checked: what `load_pairs` reads."""

    text: str  # the --data value, as given
    kind: str  # "default", "tsv" or "tfds"
    location: str = ""  # tsv: the file's expanded path; tfds: NAME[/CONFIG]


@dataclasses.dataclass
class Pairs:
    """Text pairs split for training, ready for the tokenizer.

    Every source and target is a non-empty str. Splits are disjoint by source for
    `default` and `tsv:`; `tfds:` keeps the data set's own splits.
    """

    train: list[tuple[str, str]]  # [(source, target), ...]
    validation: list[tuple[str, str]]
    test: list[tuple[str, str]]
    spec: str  # the --data value these came from
    kind: str  # its form: "default", "tsv" or "tfds" (DataSpec.kind)
    metric: str  # "exact_match" (one right answer) or "bleu" (translation)
    skipped: int = 0  # malformed records left out
    # The first few of their 1-based line numbers (tsv only).
    skipped_lines: list[int] = dataclasses.field(default_factory=list)
    # What identifies the data beyond its spec, for a resumed run to notice a change:
    # tsv {"kind", "size", "sha256"}; tfds {"kind", "name", "version", "splits"} as
    # TFDS reports them; None for the built-in data (its seed is part of the run).
    fingerprint: dict | None = None


def load_pairs(
    spec: str | DataSpec, *, seed: int = 0, strict: bool = False, limit: int | None = None
) -> Pairs:
    """Loads the pairs that `spec` names; see the module docstring for the forms.

    Args:
        spec: the --data value, or the `DataSpec` that `check_spec` made of it (a
            command that checked its options first reads the data without checking
            its spec again).
        seed: which built-in data set to generate (`default` only; a file's split
            does not depend on it, so its test set is the same in every run).
        strict: for `tsv:`, raise on the first malformed lines instead of skipping.
        limit: if given, at most this many pairs in each split.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer. Received: limit={limit!r}")
    checked = spec if isinstance(spec, DataSpec) else check_spec(spec)
    if checked.kind == "default":
        return _load_default(checked.text, seed, limit)
    if checked.kind == "tsv":
        return _load_tsv(checked.text, checked.location, strict, limit)
    return _load_tfds(checked.text, checked.location, limit)


def check_spec(spec):
    """Checks the form of a spec, and that a `tsv:` file is a readable file, without
    reading the data or importing TensorFlow: what a command checks before it starts.

    Returns:
        the `DataSpec`.
    """
    if spec == "default":
        return DataSpec(spec, "default")
    kind, colon, rest = spec.partition(":")
    if colon and kind in ("tsv", "tfds") and not rest:
        what = "a file path" if kind == "tsv" else "a data set name"
        raise DataError(f"--data {spec!r} lacks {what}: expected {ACCEPTED_SPECS}")
    if colon and kind == "tsv":
        path = os.path.expanduser(rest)
        try:
            check_regular_file(spec, path)
        except TsvError as error:
            raise DataError(str(error)) from None
        if not os.access(path, os.R_OK):
            raise DataError(f"{spec}: cannot read {path}: permission denied")
        return DataSpec(spec, "tsv", path)
    if colon and kind == "tfds":
        if not _TFDS_NAME.fullmatch(rest):
            raise DataError(
                f"{spec}: expected tfds:NAME[/CONFIG], e.g. tfds:ted_hrlr_translate/pt_to_en "
                "(community namespaces such as huggingface: are not supported, they download)"
            )
        return DataSpec(spec, "tfds", rest)
    raise DataError(f"unknown --data {spec!r}: expected {ACCEPTED_SPECS}")


def _load_default(spec, seed, limit):
    sizes = {
        f"{name}_size": size if limit is None else min(size, limit)
        for name, size in dates.DEFAULT_SIZES.items()
    }
    splits = dates.default_splits(seed, **sizes)
    return Pairs(**splits, spec=spec, kind="default", metric="exact_match")


def _load_tsv(spec, path, strict, limit):
    """Reads and splits a TSV file.

    The split follows `dates.split_of` (a stable hash of the source: about 90% train,
    5% validation, 5% test), so adding lines to a file never moves the old ones to
    another split, and one source with several targets stays in one split. With 3
    distinct sources or more, every split gets at least one (`_give_every_split_a_source`).
    """
    try:
        raw = read_bytes(spec, path)
        pairs, bad_lines = parse_tsv(spec, raw)
    except TsvError as error:
        raise DataError(str(error)) from None
    # The very bytes parsed: a file replaced since makes the next resume refuse.
    data_fingerprint = {"kind": "tsv", **fingerprint(raw)}

    if bad_lines and strict:
        raise DataError(
            f"{spec}: {len(bad_lines)} malformed line(s) (expected source<TAB>target, "
            f"both non-empty), first at line(s) {_first_few(bad_lines)}"
        )
    if not pairs:
        if bad_lines:
            raise DataError(
                f"{spec}: no valid source<TAB>target line; {len(bad_lines)} malformed, "
                f"first at line(s) {_first_few(bad_lines)}"
            )
        raise DataError(f"{spec}: the file is empty")

    splits = {name: [] for name in SPLITS}
    for pair in pairs:
        splits[dates.split_of(pair[0])].append(pair)
    _give_every_split_a_source(splits)
    return Pairs(
        **_capped(splits, limit),
        spec=spec,
        kind="tsv",
        metric="bleu",
        skipped=len(bad_lines),
        skipped_lines=bad_lines[:MAX_REPORTED_LINES],
        fingerprint=data_fingerprint,
    )


def _give_every_split_a_source(splits):
    """With 3 distinct sources or more, a split that hashing left empty takes the last
    source, with all its pairs, of the split that has the most sources: small files
    still get a validation and a test pair, and no source is in two splits."""
    sources = {name: list(dict.fromkeys(s for s, _ in splits[name])) for name in SPLITS}
    if sum(map(len, sources.values())) < 3:
        return
    for name in ("train", "test", "validation"):
        if sources[name]:
            continue
        donor = max(SPLITS, key=lambda other: len(sources[other]))
        moved = sources[donor].pop()
        splits[name] += [pair for pair in splits[donor] if pair[0] == moved]
        splits[donor] = [pair for pair in splits[donor] if pair[0] != moved]
        sources[name].append(moved)


def _load_tfds(spec, name, limit):
    """Reads a prepared TensorFlow Datasets set, as (source, target) strings.

    Nothing is downloaded: a data set that is not on disk (in $TFDS_DATA_DIR, or
    ~/tensorflow_datasets) is a DataError that says how to get it. The data set's own
    "validation" and "test" splits are used; one that it lacks is carved out of its
    train split with `dates.split_of`, like a TSV file. Pairs with an empty source or
    target are left out and counted in `skipped`.
    """
    import tensorflow_datasets as tfds

    data_dir = os.environ.get("TFDS_DATA_DIR") or None
    unversioned = name.split(":")[0]
    dataset_name, _, config = unversioned.partition("/")
    try:
        builder_class = tfds.builder_cls(dataset_name)
    except tfds.core.DatasetNotFoundError:
        raise DataError(
            f"{spec}: TensorFlow Datasets has no data set named {dataset_name!r} "
            "(see https://www.tensorflow.org/datasets/catalog)"
        ) from None
    config_names = [c.name for c in builder_class.BUILDER_CONFIGS]
    if config and config not in config_names:
        raise DataError(
            f"{spec}: {dataset_name} has no config {config!r} "
            f"(configs: {_first_few(config_names) or 'none'})"
        )

    def read(split):
        try:
            dataset, info = tfds.load(
                name, split=split, as_supervised=True, with_info=True,
                data_dir=data_dir, download=False,
            )
        except AssertionError as error:
            # tfds raises AssertionError both for data that is not on disk and for an
            # unavailable version; only the first has a known remedy.
            if "could not find data" in str(error):
                where = data_dir or "~/tensorflow_datasets"
                raise DataError(
                    f"{spec}: not found in {where}; this kit never downloads, so run "
                    f"`tfds build {unversioned}` on a machine with network access "
                    "and copy its output here, or set TFDS_DATA_DIR"
                ) from None
            raise DataError(f"{spec}: {_first_line(error)}") from None
        except ValueError as error:
            raise DataError(f"{spec}: {_first_line(error)}") from None
        return dataset, info

    train, info = read("train")
    element = train.element_spec
    parts = element if isinstance(element, tuple) else (element,)
    if len(parts) != 2 or not all(_is_text(part) for part in parts):
        raise DataError(
            f"{spec}: not a (source, target) text data set; its supervised examples are "
            f"({', '.join(_describe(part) for part in parts)})"
        )

    # Empty when TFDS knows no split names (mock data in tests): then ask for each one.
    known = set(info.splits)
    datasets = {"train": train}
    for split in ("validation", "test"):
        if not known or split in known:
            datasets[split] = read(split)[0]

    splits, skipped = {}, 0
    for split, dataset in datasets.items():
        if limit is not None:
            dataset = dataset.take(limit)
        splits[split] = []
        for index, (source, target) in enumerate(tfds.as_numpy(dataset)):
            try:
                pair = (source.decode("utf-8"), target.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{spec}: {split} example {index} is not UTF-8 text") from None
            if pair[0].strip() and pair[1].strip():
                splits[split].append(pair)
            else:
                skipped += 1
    missing = [split for split in SPLITS if split not in splits]
    if missing:
        kept = []
        for split in missing:
            splits[split] = []
        for pair in splits["train"]:
            lane = dates.split_of(pair[0])
            (splits[lane] if lane in missing else kept).append(pair)
        splits["train"] = kept
    if not splits["train"]:
        raise DataError(f"{spec}: the train split has no usable pairs")
    # What TFDS knows offline (dataset_info.json): a rebuilt or upgraded data set has
    # another version or other split sizes.
    fingerprint = {"kind": "tfds", "name": info.full_name, "version": str(info.version),
                   "splits": {split: {"num_examples": info.splits[split].num_examples,
                                      "num_bytes": info.splits[split].num_bytes}
                              for split in datasets if split in known}}
    return Pairs(**_capped(splits, limit), spec=spec, kind="tfds", metric="bleu", skipped=skipped,
                 fingerprint=fingerprint)


def _is_text(part):
    """True for a scalar string tensor spec: one text per example."""
    dtype, shape = getattr(part, "dtype", None), getattr(part, "shape", None)
    return dtype is not None and dtype.name == "string" and shape.rank == 0


def _describe(part):
    """"uint8 (28, 28, 1)" for a tensor spec; the spec itself for anything nested."""
    if hasattr(part, "dtype") and hasattr(part, "shape"):
        return f"{part.dtype.name} {tuple(part.shape)}"
    return str(part)


def _capped(splits, limit):
    if limit is None:
        return splits
    return {name: pairs[:limit] for name, pairs in splits.items()}


def _first_few(items):
    """"3, 7, 9" or, past MAX_REPORTED_LINES items, "3, 7, 9, ..." for one-line messages."""
    shown = ", ".join(str(item) for item in items[:MAX_REPORTED_LINES])
    return shown + (", ..." if len(items) > MAX_REPORTED_LINES else "")


def _first_line(error):
    return str(error).strip().split("\n")[0]
