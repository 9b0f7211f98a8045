"""Subword tokenizer: a SentencePiece model trained by the kit, shared by training and
the device.

Where one token per character makes sequences long (whole words, sentences), a unigram
or BPE model over subwords makes them four to five times shorter, and the decoder's
softmax chooses among pieces rather than letters. Training and the device run the same
`sentencepiece` package (wheels for x86_64 and aarch64; the same C++ library builds for
Android and iOS), so both give the same ids for the same text.

Two files, beside each other, the model named after the JSON file (so that a source
and a target tokenizer can share a directory):

    source_tokenizer.json   {"type": "sentencepiece", "format_version": 1,
                             "model_file": "source_tokenizer.model",
                             "model_sha256": "...", "vocab_size": N}
    source_tokenizer.model  the SentencePiece model (a serialized protobuf), what an
                            app hands to SentencePieceProcessor

The JSON records the model's SHA-256, so a bundle that checks the JSON's checksum also
vouches for the model it names. The special ids are the kit's: pad 0, unk 1, bos 2,
eos 3. Text is not normalized (rule "identity"), as with the character tokenizer:
decode(encode(text)) gives text back for every character the model knows.
"""

from __future__ import annotations

import hashlib
import os

from kit.files import atomic_write, write_json
from kit.tokenizers.base import (
    BOS_ID,
    EOS_ID,
    FORMAT_VERSION,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    UNK_TEXT,
    Tokenizer,
    TokenizerError,
    check_header,
    check_text,
    read_json,
)

MODEL_SUFFIX = ".model"
MODEL_TYPES = ("unigram", "bpe")


def model_file_name(json_name):
    """The model file beside the JSON file `json_name`: "x.json" -> "x.model"."""
    stem = os.path.basename(os.fspath(json_name))
    stem = stem[:-len(".json")] if stem.endswith(".json") else stem
    return stem + MODEL_SUFFIX


def _processor(model_proto):
    try:
        import sentencepiece as spm
    except ImportError:
        raise TokenizerError("this tokenizer is a SentencePiece model: install the "
                             "sentencepiece package (pip install sentencepiece)") from None

    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(model_proto)
    return processor


class SentencePieceTokenizer(Tokenizer):
    """Subword ids from a SentencePiece model, with the kit's special ids.

    Args:
        model_proto: the serialized SentencePiece model (bytes), e.g. from `train`.

    Example:

    >>> tok = SentencePieceTokenizer.train(["the cat sat", "the dog sat"] * 20,
    ...                                    vocab_size=24)
    >>> tok.decode(tok.encode("the cat"))
    'the cat'
    """

    TYPE = "sentencepiece"

    def __init__(self, model_proto: bytes):
        if not isinstance(model_proto, bytes) or not model_proto:
            raise TokenizerError("a SentencePiece model must be non-empty bytes")
        try:
            self._sp = _processor(model_proto)
        except (RuntimeError, OSError) as error:
            raise TokenizerError(f"not a SentencePiece model: {error}") from None
        specials = tuple(self._sp.id_to_piece(i) for i in range(len(SPECIAL_TOKENS))) \
            if self._sp.get_piece_size() >= len(SPECIAL_TOKENS) else ()
        ids = (self._sp.pad_id(), self._sp.unk_id(), self._sp.bos_id(), self._sp.eos_id())
        if specials != SPECIAL_TOKENS or ids != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise TokenizerError(
                f"a SentencePiece model for the kit has pieces {list(SPECIAL_TOKENS)} at "
                f"ids 0-3. Received: pieces {list(specials)}, ids {list(ids)}")
        self._model_proto = model_proto

    @classmethod
    def train(cls, texts, vocab_size=8000, model_type="unigram", max_sentences=2_000_000,
              seed_sentencepiece_size=1_000_000):
        """Trains a model on `texts` (an iterable of str).

        Args:
            vocab_size: the most pieces, specials included. Small data may give fewer
                (the limit is soft), never an error.
            model_type: "unigram" (the default of SentencePiece and T5) or "bpe".
            max_sentences: at most this many texts are sampled for training.
        """
        import io

        import sentencepiece as spm

        if model_type not in MODEL_TYPES:
            raise ValueError(f"`model_type` must be one of {', '.join(MODEL_TYPES)}. "
                             f"Received: model_type={model_type!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) \
                or vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"`vocab_size` must be an integer > {len(SPECIAL_TOKENS)}. "
                             f"Received: vocab_size={vocab_size!r}")
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise ValueError("no text to train a SentencePiece model on")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, hard_vocab_limit=False, character_coverage=1.0,
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            pad_piece=SPECIAL_TOKENS[PAD_ID], unk_piece=SPECIAL_TOKENS[UNK_ID],
            bos_piece=SPECIAL_TOKENS[BOS_ID], eos_piece=SPECIAL_TOKENS[EOS_ID],
            input_sentence_size=max_sentences, shuffle_input_sentence=True,
            seed_sentencepiece_size=seed_sentencepiece_size,
            # Long texts (addresses, sentences) are real data, not noise to drop.
            max_sentence_length=1 << 16, num_threads=os.cpu_count() or 1,
            minloglevel=2)
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        """Subword ids of `text`; no BOS or EOS."""
        check_text(text, "encode")
        return list(self._sp.encode(text))

    def unknown_characters(self, text: str) -> list[str]:
        """The distinct characters of `text` that the model cannot spell."""
        check_text(text, "unknown_characters")
        return [c for c in dict.fromkeys(text)
                if not c.isspace() and UNK_ID in self._sp.encode(c)]

    def decode(self, ids) -> str:
        """Text of `ids`, stopping at the first EOS, skipping PAD and BOS, and
        rendering UNK as U+FFFD (as the character tokenizer does)."""
        kept = []
        pieces = []
        size = self.vocab_size
        for raw in ids:
            token = int(raw)
            if token == EOS_ID:
                break
            if not 0 <= token < size:
                raise ValueError(f"token id {token} is outside the vocabulary (size {size})")
            if token == UNK_ID:
                pieces.append(self._sp.decode(kept))
                pieces.append(UNK_TEXT)
                kept = []
            elif token not in (PAD_ID, BOS_ID):
                kept.append(token)
        pieces.append(self._sp.decode(kept))
        return "".join(pieces)

    def files(self, json_name):
        """The JSON file `json_name` and the model file named after it."""
        return [json_name, model_file_name(json_name)]

    def to_dict(self, json_name="tokenizer.json") -> dict:
        """The JSON saved as `json_name`, which names its model file after itself."""
        return {"type": self.TYPE, "format_version": FORMAT_VERSION,
                "model_file": model_file_name(json_name),
                "model_sha256": hashlib.sha256(self._model_proto).hexdigest(),
                "vocab_size": self.vocab_size}

    def save(self, path) -> None:
        """Writes the model file (named after `path`), then the JSON that names it,
        both atomically."""
        atomic_write(os.path.join(os.path.dirname(os.path.abspath(path)),
                                  model_file_name(path)), self._model_proto)
        write_json(path, self.to_dict(os.path.basename(os.fspath(path))))

    @classmethod
    def load(cls, path) -> SentencePieceTokenizer:
        """Reads the JSON file `path` and the model it names, beside it."""
        return cls.from_dict(read_json(path), path)

    @classmethod
    def from_dict(cls, config: dict, path, read_file=None) -> SentencePieceTokenizer:
        """Reads the model file that the JSON `config` (read from `path`) names, checks
        its SHA-256 against the one recorded, and loads it.

        Args:
            read_file: `read_file(name) -> bytes` for the model file beside `path` (a
                bundle passes one that checks the file against bundle.json first);
                None reads it from disk.
        """
        try:
            check_header(config, cls.TYPE)
        except TokenizerError as error:
            raise TokenizerError(f"{path}: {error}") from None
        name, digest = config.get("model_file"), config.get("model_sha256")
        if not isinstance(name, str) or os.path.basename(name) != name or not name \
                or name in (".", ".."):
            raise TokenizerError(f"{path}: 'model_file' must be a file name. "
                                 f"Received: {name!r}")
        model_path = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if read_file is None:
            try:
                with open(model_path, "rb") as handle:
                    proto = handle.read()
            except OSError as error:
                raise TokenizerError(f"cannot read {model_path}: {error.strerror}") from None
        else:
            proto = read_file(name)
        if hashlib.sha256(proto).hexdigest() != digest:
            raise TokenizerError(f"{model_path} is not the model that {path} records "
                                 "(SHA-256 differs): copy both files together")
        return cls(proto)

    def __eq__(self, other):
        if not isinstance(other, SentencePieceTokenizer):
            return NotImplemented
        return self._model_proto == other._model_proto

    def __hash__(self):
        return hash(self._model_proto)
