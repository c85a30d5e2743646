"""Offline augmentation: words replaced by their nearest neighbours in the teacher's input-embedding space.

TinyBERT augments its task data by replacing words with a masked language model's guesses (single-piece
words) or GloVe neighbours (the rest); neither is available offline. The closest thing hrkd has is the
teacher's own word-embedding matrix, the input layer every text passes through: for a whole word that is
one word piece, its neighbours are the vocabulary's whole words whose embedding rows are nearest by cosine
(the word itself excluded). A copy of a text replaces each such word with probability ``rate`` (at least
one per copy) by one of its ``k`` nearest neighbours, drawn uniformly; words of several pieces, numbers,
punctuation and English function words stay as they are, and the replacement takes the case of the word it
replaces. Function words (FUNCTION_WORDS) are neither replaced nor replacements: a masked language model
would put a fitting article or pronoun in context, but out of context their embedding neighbours are other
function words, which break the sentence without varying what it says.

A copy is a pure function of (seed, copy number, text): the same text gets the same copies wherever it
stands. Embedding neighbours are not synonyms (antonyms and other names of the same kind are near too),
so augmented texts are transfer examples, labelled only by the teacher, never labelled data.
"""

from __future__ import annotations

import random
import re
from typing import Iterable

import torch

from hrkd_cli.data.corpus import stable_seed

WORD = re.compile(r"[^\W\d_]+")  # a run of letters
FUNCTION_WORDS = frozenset("""
a an the and or but nor so yet if then than because as while though although of in on at to from by with
without for about into onto over under after before between through during up down out off i me my mine
myself we us our ours you your yours he him his she her hers it its they them their theirs this that these
those who whom whose which what where when why how is am are was were be been being do does did have has had
will would shall should can could may might must not no never none nothing there here also too very just only
all any some each every both either neither such own same other more most much many few
""".split())
CHUNK = 1024  # words per similarity product


def is_whole_word(token: str) -> bool:
    """A vocabulary entry that is a word by itself: letters only, three or more, no function word ("##" pieces
    and specials fail; two-letter entries are mostly fragments such as "ba")."""
    return len(token) >= 3 and token.isalpha() and token.lower() not in FUNCTION_WORDS


def match_case(word: str, like: str) -> str:
    """``word`` in the case of ``like`` (UPPER, Capitalised or as it is)."""
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class Neighbours:
    """Nearest whole-word neighbours (cosine) in an input-embedding matrix [vocab, width]."""

    def __init__(self, tokenizer, embeddings: torch.Tensor, k: int):
        vocab = sorted((i, t) for t, i in tokenizer.get_vocab().items() if is_whole_word(t) and i < embeddings.shape[0])
        self.words = [t for _, t in vocab]
        self.index = {t: j for j, t in enumerate(self.words)}
        self.by_id = {i: t for i, t in vocab}
        rows = embeddings[torch.tensor([i for i, _ in vocab], dtype=torch.long)].detach().float()
        self.unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.tokenizer, self.k = tokenizer, min(k, len(self.words) - 1)
        self._piece: dict[str, str | None] = {}
        self._near: dict[str, list[str]] = {}

    def learn(self, texts: Iterable[str]) -> None:
        """Look up every word of ``texts`` (one tokenizer call) and compute the neighbours of the replaceable
        ones (a few similarity products), instead of one call and one product per word."""
        words = sorted({w for t in texts for w in WORD.findall(t)} - self._piece.keys())
        for start in range(0, len(words), 8 * CHUNK):
            chunk = words[start : start + 8 * CHUNK]
            for w, ids in zip(chunk, self.tokenizer(chunk, add_special_tokens=False)["input_ids"]):
                self._piece[w] = self.by_id.get(ids[0]) if len(ids) == 1 and w.lower() not in FUNCTION_WORDS else None
        self.prepare(p for p in self._piece.values() if p is not None)

    def piece(self, word: str) -> str | None:
        """The vocabulary word that ``word`` is as one piece, or None (several pieces, or not a whole word)."""
        if word not in self._piece:
            pieces = [] if word.lower() in FUNCTION_WORDS else self.tokenizer.tokenize(word)
            self._piece[word] = pieces[0] if len(pieces) == 1 and pieces[0] in self.index else None
        return self._piece[word]

    def pieces(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, piece) of every replaceable word of ``text``."""
        out = []
        for m in WORD.finditer(text):
            piece = self.piece(m.group())
            if piece is not None:
                out.append((m.start(), m.end(), piece))
        return out

    def prepare(self, pieces: Iterable[str]) -> None:
        """Compute the neighbours of ``pieces`` (a few similarity products instead of one per word)."""
        todo = sorted(set(pieces) - self._near.keys())
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            rows = torch.tensor([self.index[w] for w in chunk], dtype=torch.long)
            sims = self.unit[rows] @ self.unit.T
            sims[torch.arange(len(chunk)), rows] = -float("inf")  # never the word itself
            for w, idx in zip(chunk, sims.topk(self.k, dim=1).indices.tolist()):
                self._near[w] = [self.words[j] for j in idx]

    def of(self, piece: str) -> list[str]:
        if piece not in self._near:
            self.prepare([piece])
        return self._near[piece]


def augment_text(text: str, rng: random.Random, neighbours: Neighbours, rate: float, spans=None) -> str | None:
    """One copy of ``text`` with each replaceable word swapped with probability ``rate`` (at least one);
    None when it has no replaceable word. ``spans``: ``neighbours.pieces(text)``, where known already."""
    spans = neighbours.pieces(text) if spans is None else spans
    if not spans:
        return None
    chosen = [s for s in spans if rng.random() < rate] or [spans[rng.randrange(len(spans))]]
    out, last = [], 0
    for start, end, piece in chosen:
        out += [text[last:start], match_case(rng.choice(neighbours.of(piece)), text[start:end])]
        last = end
    out.append(text[last:])
    return "".join(out)


def augment_copies(text: str, text_b: str | None, copies: int, rate: float, seed: int,
                   neighbours: Neighbours) -> list[tuple[str, str | None]]:
    """``copies`` augmented copies of an example (both segments of a pair); [] when nothing can be replaced."""
    spans, spans_b = neighbours.pieces(text), neighbours.pieces(text_b) if text_b else []
    if not spans and not spans_b:
        return []
    out = []
    for c in range(1, copies + 1):
        rng = random.Random(stable_seed("hrkd-augment", seed, c, text, text_b or ""))
        a = augment_text(text, rng, neighbours, rate, spans) or text
        b = (augment_text(text_b, rng, neighbours, rate, spans_b) or text_b) if text_b else None
        out.append((a, b))
    return out


def mark_replacements(original: str, augmented: str, max_words: int = 0) -> str:
    """``augmented`` (a copy of ``original`` or of its beginning) with each replaced word shown as [old->new];
    the first ``max_words`` words when > 0."""
    old, new = list(WORD.finditer(original)), list(WORD.finditer(augmented))
    if len(old) < len(new):  # not a copy made by augment_text
        return augmented
    out, last = [], 0
    for i, (a, b) in enumerate(zip(old, new)):
        if max_words and i >= max_words:
            return "".join(out) + augmented[last : b.start()].rstrip() + " ..."
        out.append(augmented[last : b.start()])
        out.append(b.group() if a.group() == b.group() else f"[{a.group()}->{b.group()}]")
        last = b.end()
    out.append(augmented[last:])
    return "".join(out)
