"""Byte-pair encoding (BPE): a sub-word tokenizer learned from a corpus (chapter 9).

BPE {Sennrich et al. 2016} starts from single symbols and repeatedly merges the most frequent
adjacent pair into a new symbol, so frequent words end up as one token and rare words as a few
pieces. As in GPT-2 {Radford et al. 2019}, the symbols are *bytes* (of the UTF-8 text): the 256
byte values are the first tokens, merge ``k`` creates token ``256 + k``, and any text at all can
be encoded, with no unknown token. The text is first cut into chunks (a word with its leading
space, a number, a run of punctuation, whitespace) and merges never cross a chunk boundary, so
no token spans two words.

``train_bpe(text, n_merges)`` learns the merges; the :class:`BPE` it returns encodes text to
token ids (``encode``) and back (``decode``). Pure Python and NumPy: a few hundred merges on a
few hundred thousand characters take seconds.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import numpy as np

__all__ = ["chunks", "merge_pair", "train_bpe", "BPE"]

# A word with its leading space, a number, a run of other symbols, or whitespace (GPT-2's
# pre-tokenisation, simplified): the chunks cover the text, so joining them gives it back.
_CHUNK = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def chunks(text: str) -> list[str]:
    """Cut ``text`` into the chunks that merges may not cross; ``"".join`` gives ``text``."""
    return _CHUNK.findall(text)


def merge_pair(seq: tuple, pair: tuple[int, int], new: int) -> tuple:
    """Replace every occurrence of ``pair`` in ``seq``, left to right, by the token ``new``."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return tuple(out)


def train_bpe(text: str, n_merges: int) -> "BPE":
    """Learn up to ``n_merges`` merges from ``text``; the most frequent pair first.

    Each distinct chunk is kept once with its count, as a tuple of token ids. ``pairs`` counts
    every adjacent pair over all chunks; ``where`` remembers which chunks contain a pair, so a
    merge rewrites only those chunks and updates the counts of the pairs they lose and gain.
    Ties go to the pair with the smallest ids, so training is deterministic. Stops early when
    no pair is left (every chunk is one token).
    """
    if n_merges < 0:
        raise ValueError(f"n_merges must be >= 0, got {n_merges}")
    counts = Counter(chunks(text))
    seqs = {w: tuple(w.encode("utf-8")) for w in counts}
    pairs, where = Counter(), defaultdict(set)
    for w, seq in seqs.items():
        for p in zip(seq, seq[1:]):
            pairs[p] += counts[w]
            where[p].add(w)
    merges = []
    for new in range(256, 256 + n_merges):
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w in list(where.pop(best)):
            old, n = seqs[w], counts[w]
            for p in zip(old, old[1:]):              # the chunk's pairs before the merge ...
                pairs[p] -= n
                if pairs[p] == 0:
                    del pairs[p]
                where[p].discard(w)
            seqs[w] = merge_pair(old, best, new)
            for p in zip(seqs[w], seqs[w][1:]):      # ... and after it
                pairs[p] += n
                where[p].add(w)
    return BPE(merges)


class BPE:
    """A byte-level BPE tokenizer: token ``i < 256`` is byte ``i``, token ``256 + k`` is the
    concatenation of the two tokens of merge ``k``.

    Args:
        merges: the pairs ``(a, b)`` of token ids, in the order they were learned; pair ``k``
            may only use ids below ``256 + k``.
    """

    def __init__(self, merges):
        self.merges = [(int(a), int(b)) for a, b in merges]
        self.pieces = [bytes([i]) for i in range(256)]          # id -> the bytes it stands for
        for k, (a, b) in enumerate(self.merges):
            if not (0 <= a < 256 + k and 0 <= b < 256 + k):
                raise ValueError(f"merge {k} = {(a, b)} uses a token not defined before it")
            self.pieces.append(self.pieces[a] + self.pieces[b])
        self.rank = {pair: k for k, pair in enumerate(self.merges)}
        self._cache: dict[str, tuple] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode_chunk(self, chunk: str) -> tuple:
        """Token ids of one chunk: apply the learned merges, earliest learned first."""
        if chunk not in self._cache:
            seq = tuple(chunk.encode("utf-8"))
            while len(seq) > 1:
                k, pair = min((self.rank.get(p, len(self.rank)), p) for p in zip(seq, seq[1:]))
                if k == len(self.rank):                  # no pair of the chunk was learned
                    break
                seq = merge_pair(seq, pair, 256 + k)
            self._cache[chunk] = seq
        return self._cache[chunk]

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> int32 token ids."""
        ids = [i for c in chunks(text) for i in self.encode_chunk(c)]
        return np.asarray(ids, dtype="int32")

    def decode(self, ids) -> str:
        """Token ids -> text (bytes that are not valid UTF-8 become U+FFFD)."""
        ids = np.asarray(ids, dtype="int64").ravel()
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got "
                             f"[{ids.min()}, {ids.max()}]")
        return b"".join(self.pieces[i] for i in ids).decode("utf-8", errors="replace")

    def token(self, i: int) -> str:
        """The text of token ``i``, for display."""
        return self.pieces[i].decode("utf-8", errors="replace")
