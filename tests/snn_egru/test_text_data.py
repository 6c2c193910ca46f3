"""Word-level LM data: PTB sizes, WikiText-2 reading, vocabulary, batching, BPTT windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_egru.data.text import (
    EOS,
    MAX_SEQ_LEN_DELTA,
    MIN_SEQ_LEN,
    PTB_SIZES,
    UNK,
    DataNotFoundError,
    Vocabulary,
    batchify,
    bptt_windows,
    corpus_from_texts,
    get_batch,
    load_corpus,
    load_penn_treebank,
    load_wikitext2,
    sample_seq_len,
    shard_streams,
    tokenize,
)

# A WikiText-2 excerpt in the release's format: a leading blank line, headings " = T = ",
# sub-headings " = = S = = ", blank lines between paragraphs, <unk>, @-@ tokens.
WIKI_TRAIN = (
    " \n"
    " = Valkyria Chronicles III = \n"
    " \n"
    " Senjō no Valkyria 3 : <unk> Chronicles is a tactical role @-@ playing game . \n"
    " \n"
    " = = Gameplay = = \n"
    " \n"
    " The game is a <unk> game . \n"
)
WIKI_VALID = " \n = Homarus gammarus = \n \n The game is a lobster . \n"
WIKI_TEST = " \n = Robert Boulter = \n \n Robert is a game . \n"


def write_wikitext(folder, train=WIKI_TRAIN, valid=WIKI_VALID, test=WIKI_TEST):
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"wiki.{name}.tokens").write_text(text, encoding="utf-8")


# ----------------------------------------------------------------------------- tokens
def test_tokenize_appends_eos_per_line_and_keeps_blank_lines():
    assert tokenize("a b\n\nc\n") == ["a", "b", EOS, EOS, "c", EOS]
    assert tokenize("  x  \ty ") == ["x", "y", EOS]
    assert tokenize("") == []


def test_vocabulary_first_appearance_order_and_round_trip():
    vocab = Vocabulary.build(["b", "a", "b", "c"])
    assert vocab.to_list() == ["b", "a", "c"]
    ids = vocab.encode(["c", "b", "a"])
    assert ids.dtype == torch.int64
    assert ids.tolist() == [2, 0, 1]
    assert vocab.decode(ids) == ["c", "b", "a"]
    assert Vocabulary(vocab.to_list()) == vocab


def test_vocabulary_unknown_tokens():
    vocab = Vocabulary(["x", UNK])
    assert vocab.encode(["x", "never-seen"]).tolist() == [0, 1]
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):
        Vocabulary(["x"]).encode(["x", "zzz"])
    with pytest.raises(ValueError, match="duplicate token 'x'"):
        Vocabulary(["x", "x"])


# ----------------------------------------------------------------------------- corpora
def test_penn_treebank_standard_sizes():
    corpus = load_penn_treebank()
    assert corpus.summary() == PTB_SIZES
    assert PTB_SIZES == {"train": 929_589, "valid": 73_760, "test": 82_430, "vocab": 10_000}
    vocab = corpus.vocabulary
    assert {EOS, UNK, "N"} <= set(vocab.to_list())
    # Mikolov's train split starts with the rare-word line "aer banknote berlitz ...".
    assert vocab.decode(corpus.train[:3]) == ["aer", "banknote", "berlitz"]
    # The second line of valid is "... <eos>"-terminated; every split ends with <eos>.
    for split in ("train", "valid", "test"):
        assert vocab.itos[int(corpus.split(split)[-1])] == EOS
    assert int(corpus.train.max()) == len(vocab) - 1
    assert load_corpus("PTB").summary() == PTB_SIZES


def test_wikitext2_reader_on_files_in_the_release_format(tmp_path):
    write_wikitext(tmp_path)
    corpus = load_wikitext2(tmp_path)
    train = corpus.vocabulary.decode(corpus.train)
    # 8 lines -> 8 <eos>; blank lines contribute just <eos>.
    assert train[:7] == [EOS, "=", "Valkyria", "Chronicles", "III", "=", EOS]
    assert train.count(EOS) == 8
    assert len(train) == 8 + 5 + 15 + 5 + 7
    assert train.count(UNK) == 2
    assert "@-@" in corpus.vocabulary
    # "Homarus", "gammarus", "lobster", "Robert", "Boulter" are out of vocabulary -> <unk>.
    valid = corpus.vocabulary.decode(corpus.valid)
    assert valid == [EOS, "=", UNK, UNK, "=", EOS, EOS, "The", "game", "is", "a", UNK, ".", EOS]
    assert corpus.vocabulary.decode(corpus.test).count(UNK) == 3
    assert load_corpus("wikitext-2", tmp_path).summary() == corpus.summary()


def test_wikitext2_missing_files_say_where_to_put_them(tmp_path):
    (tmp_path / "wiki.train.tokens").write_text("a\n")
    with pytest.raises(DataNotFoundError) as info:
        load_wikitext2(tmp_path)
    message = str(info.value)
    assert "wiki.valid.tokens" in message and "wiki.test.tokens" in message
    assert str(tmp_path) in message
    with pytest.raises(DataNotFoundError, match="needs its folder: pass --data-dir"):
        load_corpus("wikitext2")
    with pytest.raises(ValueError, match="unknown corpus 'imdb'"):
        load_corpus("imdb")


def test_unknown_validation_words_add_unk_when_train_has_none():
    corpus = corpus_from_texts("a b\n", "a c\n", "b\n")
    assert corpus.vocabulary.to_list() == ["a", "b", EOS, UNK]
    assert corpus.vocabulary.decode(corpus.valid) == ["a", UNK, EOS]


# ----------------------------------------------------------------------------- batching
def test_batchify_makes_contiguous_streams():
    data = torch.arange(23)
    batched = batchify(data, 4)
    assert batched.shape == (5, 4)
    for b in range(4):
        assert batched[:, b].tolist() == list(range(5 * b, 5 * b + 5))
    with pytest.raises(ValueError, match="too few"):
        batchify(torch.arange(5), 4)
    with pytest.raises(ValueError, match="1-D"):
        batchify(torch.zeros(2, 3, dtype=torch.long), 2)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(10, 400),
    batch=st.integers(1, 5),
    bptt=st.integers(1, 30),
    random_length=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_windows_cover_every_row_once_in_order(n, batch, bptt, random_length, seed):
    if n // batch < 2:
        return
    source = batchify(torch.arange(n), batch)
    windows = list(bptt_windows(source.shape[0], bptt, random_length=random_length, seed=seed))
    covered = []
    for k, window in enumerate(windows):
        assert window.index == k
        inputs, targets = get_batch(source, window.start, window.seq_len)
        assert inputs.shape == (window.seq_len, batch)
        assert torch.equal(targets, source[window.start + 1 : window.start + 1 + window.seq_len])
        covered.extend(range(window.start, window.start + window.seq_len))
    assert covered == list(range(source.shape[0] - 1))
    again = list(bptt_windows(source.shape[0], bptt, random_length=random_length, seed=seed))
    assert again == windows


def test_random_window_length_distribution():
    rng = np.random.default_rng(0)
    lengths = np.array([sample_seq_len(70, rng) for _ in range(20_000)])
    assert lengths.min() >= MIN_SEQ_LEN and lengths.max() <= 70 + MAX_SEQ_LEN_DELTA
    half = lengths < 52  # N(35, 5) draws; N(70, 5) is never this short in practice
    assert abs(half.mean() - 0.05) < 0.01
    assert abs(lengths[~half].mean() - 69.5) < 0.3  # int() truncation: mean of N(70,5) - 0.5
    assert abs(lengths[~half].std() - 5.0) < 0.3
    assert sample_seq_len(3, np.random.default_rng(1)) >= MIN_SEQ_LEN


def test_shard_streams_split_the_batch_among_ranks():
    source = batchify(torch.arange(48), 6)
    shards = [shard_streams(source, r, 3) for r in range(3)]
    assert all(s.shape == (8, 2) for s in shards)
    assert torch.equal(torch.cat(shards, dim=1), source)
    with pytest.raises(ValueError, match="multiple of 4"):
        shard_streams(source, 0, 4)
