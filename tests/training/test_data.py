"""Tests for training/data.py, the --data SPEC loader.

The tfds tests run the real tensorflow_datasets code offline, either under
`tfds.testing.mock_data` or on a tiny data set that the test prepares on disk itself,
and with sockets disabled, so that any attempt to reach the network fails the test.
"""

import socket

import pytest

from training import dates
from training.data import MAX_REPORTED_LINES, DataError, Pairs, load_pairs

SPLITS = ("train", "validation", "test")


def _splits(pairs):
    return {name: getattr(pairs, name) for name in SPLITS}


def _write_tsv(tmp_path, content, name="pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return f"tsv:{path}"


@pytest.fixture
def no_network(monkeypatch):
    """Turns any connection or DNS lookup from Python into a test failure."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_no_network_fixture_blocks_connections(no_network):
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("example.com", 80), timeout=1)
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.getaddrinfo("example.com", 443)


# --- spec forms -------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["", "defaults", "csv:pairs.csv", "tsv", "hf:opus"])
def test_unknown_spec_lists_the_accepted_forms(spec):
    with pytest.raises(DataError, match="expected 'default', 'tsv:PATH' or 'tfds:NAME") as caught:
        load_pairs(spec)
    assert repr(spec) in str(caught.value)


@pytest.mark.parametrize("spec, what", [("tsv:", "a file path"), ("tfds:", "a data set name")])
def test_spec_without_its_argument(spec, what):
    with pytest.raises(DataError, match=f"lacks {what}"):
        load_pairs(spec)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True])
def test_limit_must_be_positive(limit):
    with pytest.raises(DataError, match=f"limit={limit!r}"):
        load_pairs("default", limit=limit)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# --- default ----------------------------------------------------------------------


def test_default_is_the_built_in_dates_data_set():
    pairs = load_pairs("default")
    assert isinstance(pairs, Pairs)
    assert pairs.spec == "default" and pairs.metric == "exact_match"
    assert (len(pairs.train), len(pairs.validation), len(pairs.test)) == (50000, 2000, 2000)
    assert _splits(pairs) == dates.default_splits(0)
    assert pairs.skipped == 0 and pairs.skipped_lines == []


def test_default_seed_and_limit():
    small = load_pairs("default", seed=5, limit=30)
    assert [len(v) for v in _splits(small).values()] == [30, 30, 30]
    assert _splits(small) == dates.default_splits(5, 30, 30, 30)
    assert small.train != load_pairs("default", seed=6, limit=30).train


# --- tsv --------------------------------------------------------------------------


def test_tsv_reads_every_pair_once_into_disjoint_splits(tmp_path):
    lines = [f"source {i} — ü\ttarget {i}" for i in range(400)]
    pairs = load_pairs(_write_tsv(tmp_path, "\n".join(lines) + "\n"))
    assert pairs.metric == "bleu" and pairs.skipped == 0 and pairs.skipped_lines == []
    everything = pairs.train + pairs.validation + pairs.test
    assert sorted(everything) == sorted(tuple(line.split("\t")) for line in lines)
    for name, split in _splits(pairs).items():
        assert all(dates.split_of(source) == name for source, _ in split)
    assert 340 < len(pairs.train) < 390 and pairs.validation and pairs.test
    # File order is kept within a split.
    assert pairs.train == sorted(pairs.train, key=lambda p: int(p[0].split()[1]))


def test_tsv_handles_crlf_bom_blank_lines_and_inner_spaces(tmp_path):
    content = "\ufeffa b\tA B\r\n\r\n   \nc\t d \r\ne\tE"
    pairs = load_pairs(_write_tsv(tmp_path, content))
    assert sorted(pairs.train + pairs.validation + pairs.test) == [
        ("a b", "A B"),
        ("c", " d "),
        ("e", "E"),
    ]
    assert pairs.skipped == 0


def test_tsv_keeps_characters_that_splitlines_would_break_at(tmp_path):
    pairs = load_pairs(_write_tsv(tmp_path, "x\u2028y\tz\x0bw\nbad line\n"))
    assert pairs.train + pairs.validation + pairs.test == [("x\u2028y", "z\x0bw")]
    assert pairs.skipped_lines == [2]


def test_tsv_small_file_still_has_validation_and_test(tmp_path):
    # Hash these three sources and all would be train; two must move.
    sources = ["a", "b", "c"]
    assert {dates.split_of(s) for s in sources} == {"train"}
    pairs = load_pairs(_write_tsv(tmp_path, "a\t1\nb\t2\nc\t3\n"))
    assert (pairs.train, pairs.validation, pairs.test) == ([("a", "1")], [("b", "2")], [("c", "3")])


def test_tsv_with_fewer_than_three_pairs_is_all_train(tmp_path):
    pairs = load_pairs(_write_tsv(tmp_path, "a\t1\nb\t2\n"))
    assert pairs.train == [("a", "1"), ("b", "2")] and pairs.validation == pairs.test == []


MALFORMED = (
    "good one\tfine\n"  # 1
    "no tab here\n"  # 2
    "\n"  # 3 blank: ignored, not malformed
    "two\ttabs\there\n"  # 4
    "\tempty source\n"  # 5
    "empty target\t\n"  # 6
    "good two\tfine\n"  # 7
    "blank target\t   \n"  # 8
    "good three\tfine\n"  # 9
)


def test_tsv_malformed_lines_are_skipped_and_counted(tmp_path):
    pairs = load_pairs(_write_tsv(tmp_path, MALFORMED))
    assert pairs.skipped == 5
    assert pairs.skipped_lines == [2, 4, 5, 6, 8]
    assert sorted(pairs.train + pairs.validation + pairs.test) == [
        ("good one", "fine"),
        ("good three", "fine"),
        ("good two", "fine"),
    ]


def test_tsv_strict_names_the_bad_lines(tmp_path):
    expected = r"5 malformed line\(s\).*first at line\(s\) 2, 4, 5, 6, 8$"
    with pytest.raises(DataError, match=expected):
        load_pairs(_write_tsv(tmp_path, MALFORMED), strict=True)


def test_tsv_reports_only_the_first_few_bad_lines(tmp_path):
    content = "".join(f"bad {i}\n" for i in range(1, 31)) + "ok\tyes\n"
    pairs = load_pairs(_write_tsv(tmp_path, content))
    assert pairs.skipped == 30 and pairs.skipped_lines == list(range(1, MAX_REPORTED_LINES + 1))
    with pytest.raises(DataError, match=r"30 malformed.*1, 2, 3, 4, 5, 6, 7, 8, 9, 10, \.\.\.$"):
        load_pairs(_write_tsv(tmp_path, content), strict=True)


def test_tsv_limit_caps_each_split(tmp_path):
    content = "".join(f"s{i}\tt{i}\n" for i in range(500))
    pairs = load_pairs(_write_tsv(tmp_path, content), limit=7)
    assert [len(v) for v in _splits(pairs).values()] == [7, 7, 7]


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (b"\n  \n\r\n", "the file is empty"),
        (
            b"no tab\nalso none\n",
            r"no valid source<TAB>target line; 2 malformed, first at line\(s\) 1, 2",
        ),
        (b"ok\tfine\nbad \xff byte\tx\n", r"not UTF-8 \(byte 0xff at line 2, byte offset 12\)"),
        (b"caf\xe9\tcoffee\n", r"not UTF-8 \(byte 0xe9 at line 1, byte offset 3\)"),
    ],
)
def test_tsv_unusable_files(tmp_path, content, message):
    spec = _write_tsv(tmp_path, content)
    with pytest.raises(DataError, match=message) as caught:
        load_pairs(spec)
    assert str(caught.value).startswith(spec) and "\n" not in str(caught.value)


def test_tsv_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match=r"^tsv:.*nope\.tsv: file not found$"):
        load_pairs(f"tsv:{tmp_path / 'nope.tsv'}")
    with pytest.raises(DataError, match="is a directory, expected a file"):
        load_pairs(f"tsv:{tmp_path}")


# --- tfds -------------------------------------------------------------------------


@pytest.fixture
def tfds():
    import tensorflow_datasets

    return tensorflow_datasets


TED = "ted_hrlr_translate/pt_to_en"


def test_tfds_through_the_real_loader_on_mock_data(tfds, no_network):
    with tfds.testing.mock_data(num_examples=12):
        pairs = load_pairs(f"tfds:{TED}")
    assert pairs.spec == f"tfds:{TED}" and pairs.metric == "bleu"
    for name, split in _splits(pairs).items():
        # Mock data serves every split name, each with the same random examples.
        assert 0 < len(split) <= 12, name
        for source, target in split:
            assert isinstance(source, str) and isinstance(target, str)
            assert source.strip() and target.strip()
    # Every example is either kept or counted as skipped (12 per split).
    assert sum(len(split) for split in _splits(pairs).values()) + pairs.skipped == 36


def test_tfds_limit_caps_each_split(tfds, no_network):
    with tfds.testing.mock_data(num_examples=20):
        pairs = load_pairs(f"tfds:{TED}", limit=4)
    assert all(0 < len(split) <= 4 for split in _splits(pairs).values())


@pytest.mark.parametrize("mocked", [False, True])
def test_tfds_unknown_data_set(tfds, no_network, mocked):
    spec = "tfds:surely_not_a_dataset/pt_to_en"
    if mocked:
        with tfds.testing.mock_data(num_examples=2), pytest.raises(DataError) as caught:
            load_pairs(spec)
    else:
        with pytest.raises(DataError) as caught:
            load_pairs(spec)
    message = str(caught.value)
    assert "no data set named 'surely_not_a_dataset'" in message and "\n" not in message


def test_tfds_unknown_config_lists_the_configs(tfds, no_network):
    expected = r"ted_hrlr_translate has no config 'pt_to_xx' \(configs: .*pt_to_en"
    with pytest.raises(DataError, match=expected):
        load_pairs("tfds:ted_hrlr_translate/pt_to_xx")


@pytest.mark.parametrize("name", ["huggingface:opus100/en-fr", "Ted_Hrlr", "ted hrlr", "ted/pt:1"])
def test_tfds_rejects_names_outside_the_grammar(name):
    with pytest.raises(DataError, match=r"expected tfds:NAME\[/CONFIG\]"):
        load_pairs(f"tfds:{name}")


@pytest.mark.parametrize(
    "name, message",
    [
        ("mnist", r"not a \(source, target\) text data set; "
                  r".* \(uint8 \(28, 28, 1\), int64 \(\)\)$"),
        ("imdb_reviews", r"not a \(source, target\) text data set; "
                         r".* \(string \(\), int64 \(\)\)$"),
        ("coco/2017", "does not support a supervised structure"),
    ],
)
def test_tfds_rejects_sets_that_are_not_text_pairs(tfds, no_network, name, message):
    with tfds.testing.mock_data(num_examples=2), pytest.raises(DataError, match=message):
        load_pairs(f"tfds:{name}")


def test_tfds_not_on_disk_says_how_to_get_it_and_never_downloads(
    tfds, no_network, tmp_path, monkeypatch
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as caught:
        load_pairs(f"tfds:{TED}")
    message = str(caught.value)
    assert f"not found in {tmp_path}" in message
    assert f"`tfds build {TED}`" in message and "TFDS_DATA_DIR" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_data_dir(tmp_path_factory):
    """A real, prepared TFDS data set with train and test splits but no validation.

    Config "clean" has one pair with an empty target, "blank" has only empty
    targets, and "latin1" has a source that is not UTF-8. Generated locally, so
    preparing it needs no network.
    """
    import tensorflow_datasets as tfds

    class KitTinyPairs(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")
        # TFDS 4.9.10 locates a builder's source with `importlib_resources`, a package
        # it declares only for Python < 3.9 (tensorflow/datasets#11212). A builder with
        # no code path has no checksums file to find and never needs it.
        code_path = None
        BUILDER_CONFIGS = [
            tfds.core.BuilderConfig(name=name) for name in ("clean", "latin1", "blank")
        ]

        def _info(self):
            text = tfds.features.Text()
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({"src": text, "tgt": text}),
                supervised_keys=("src", "tgt"),
            )

        def _split_generators(self, dl_manager):
            return {
                "train": self._generate_examples(range(200)),
                "test": self._generate_examples(range(1000, 1010)),
            }

        def _generate_examples(self, numbers):
            for i in numbers:
                source = f"fonte {i} ç".encode()
                if self.builder_config.name == "latin1" and i == 1005:
                    source = "fonte ç".encode("latin-1")
                blank = i == 7 or self.builder_config.name == "blank"
                yield i, {"src": source, "tgt": "" if blank else f"source {i}"}

    data_dir = tmp_path_factory.mktemp("tfds")
    for config in ("clean", "latin1", "blank"):
        KitTinyPairs(config=config, data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_tfds_prepared_data_set_uses_its_splits_and_carves_validation(
    tiny_data_dir, monkeypatch, no_network
):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tiny_data_dir))
    pairs = load_pairs("tfds:kit_tiny_pairs/clean")
    assert sorted(pairs.test) == sorted((f"fonte {i} ç", f"source {i}") for i in range(1000, 1010))
    # No validation split on disk: it comes out of train, by the same hash as TSV files.
    assert pairs.validation
    assert all(dates.split_of(source) == "validation" for source, _ in pairs.validation)
    assert all(dates.split_of(source) != "validation" for source, _ in pairs.train)
    assert not {s for s, _ in pairs.train} & {s for s, _ in pairs.validation}
    # Example 7 has an empty target.
    assert pairs.skipped == 1 and len(pairs.train) + len(pairs.validation) == 199


def test_tfds_example_that_is_not_utf8(tiny_data_dir, monkeypatch, no_network):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tiny_data_dir))
    expected = r"^tfds:kit_tiny_pairs/latin1: test example \d+ is not UTF-8 text$"
    with pytest.raises(DataError, match=expected):
        load_pairs("tfds:kit_tiny_pairs/latin1")


def test_tfds_train_split_without_usable_pairs(tiny_data_dir, monkeypatch, no_network):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tiny_data_dir))
    expected = r"^tfds:kit_tiny_pairs/blank: the train split has no usable pairs$"
    with pytest.raises(DataError, match=expected):
        load_pairs("tfds:kit_tiny_pairs/blank")
