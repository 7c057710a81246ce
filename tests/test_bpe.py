"""gdlbook.bpe: a known example, round trips on held-out text, fewer tokens with more merges."""

import numpy as np
import pytest

from gdlbook import bpe


def test_known_example():
    """'aaabdaaabac': merge aa, then ab (tie with (aa, a) broken by the smaller ids), then aa+ab."""
    tok = bpe.train_bpe("aaabdaaabac", 3)
    a, b, c, d = (ord(x) for x in "abcd")
    assert tok.merges == [(a, a), (a, b), (256, 257)]
    ids = tok.encode("aaabdaaabac")
    assert ids.tolist() == [258, d, 258, a, c] and ids.dtype == np.int32
    assert [tok.token(i) for i in ids] == ["aaab", "d", "aaab", "a", "c"]
    assert tok.vocab_size == 259


def test_chunks_cover_the_text_and_merges_stay_inside_words():
    text = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n  3 lives!"
    assert "".join(bpe.chunks(text)) == text
    tok = bpe.train_bpe(text * 20, 200)
    assert all(" " not in tok.token(i).strip(" ") for i in range(256, tok.vocab_size))


@pytest.fixture(scope="module")
def shakespeare():
    from gdlbook import data
    text = data.load("tinyshakespeare", verbose=False)
    return text[:100_000], text[-30_000:]          # train on the start, test on the end


def test_round_trip_on_held_out_text(shakespeare):
    train, held_out = shakespeare
    tok = bpe.train_bpe(train, 150)
    for text in (held_out, "Ünïcödé — and emoji 🎭, unseen in training\n"):
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert ids.min() >= 0 and ids.max() < tok.vocab_size


def test_more_merges_fewer_tokens(shakespeare):
    train, held_out = shakespeare
    lengths = [len(bpe.train_bpe(train, n).encode(held_out)) for n in (0, 30, 150)]
    assert lengths[0] == len(held_out.encode("utf-8"))        # no merges: one token per byte
    assert lengths[0] > lengths[1] > lengths[2], lengths
    assert lengths[2] < 0.65 * lengths[0], lengths             # words compress on unseen text


def test_bad_input():
    with pytest.raises(ValueError, match="n_merges"):
        bpe.train_bpe("abc", -1)
    with pytest.raises(ValueError, match="not defined"):
        bpe.BPE([(97, 300)])
    tok = bpe.train_bpe("abab", 1)
    with pytest.raises(ValueError, match="token ids"):
        tok.decode([0, 257])
