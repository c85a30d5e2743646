"""Embedding-neighbour augmentation (hrkd_cli/data/augment.py) on the real uncased vocabulary and planted embeddings."""

from __future__ import annotations

import random

import pytest
import torch

from hrkd_cli.data.augment import (FUNCTION_WORDS, WORD, Neighbours, augment_copies, augment_text, is_whole_word,
                                   mark_replacements, match_case)


def planted(tokenizer, pairs: dict[str, str], width: int = 16, seed: int = 0) -> torch.Tensor:
    """Random embeddings in which each planted word's row is almost its partner's, so the partner is its nearest."""
    g = torch.Generator().manual_seed(seed)
    vocab = tokenizer.get_vocab()
    emb = torch.randn(len(vocab), width, generator=g)
    for a, b in pairs.items():
        emb[vocab[a]] = emb[vocab[b]] + 1e-3 * torch.randn(width, generator=g)
    return emb


@pytest.fixture(scope="module")
def near(tokenizer):
    emb = planted(tokenizer, {"novel": "book", "gripping": "thrilling", "kettle": "pan"})
    return Neighbours(tokenizer, emb, k=1)


def test_nearest_neighbour_is_the_planted_partner_and_never_the_word_itself(near):
    assert near.of("novel") == ["book"] and near.of("gripping") == ["thrilling"] and near.of("kettle") == ["pan"]
    assert all(near.of(w) != [w] for w in ("book", "story", "phone"))


def test_only_single_piece_whole_words_outside_the_function_words_are_replaceable(near, tokenizer):
    text = "The novel's 2 gripping chapters, unfotrunately, are about a kettle."
    pieces = {text[a:b]: p for a, b, p in near.pieces(text)}
    assert pieces == {"novel": "novel", "gripping": "gripping", "chapters": "chapters", "kettle": "kettle"}
    assert len(tokenizer.tokenize("unfotrunately")) > 1  # several pieces: kept
    assert "the" in FUNCTION_WORDS and "are" in FUNCTION_WORDS and "about" in FUNCTION_WORDS
    assert not is_whole_word("##ing") and not is_whole_word("[CLS]") and not is_whole_word("ba") and is_whole_word("book")
    assert not any(w in FUNCTION_WORDS for w in near.words)  # nor are they ever a replacement


def test_rate_one_replaces_every_replaceable_word_keeping_case_and_everything_else(near):
    out = augment_text("Novel, GRIPPING novel; 42 kettle!", random.Random(0), near, rate=1.0)
    assert out == "Book, THRILLING book; 42 pan!"
    assert match_case("book", "Novel") == "Book" and match_case("book", "NOVEL") == "BOOK" and match_case("book", "novel") == "book"


def test_a_copy_changes_at_least_one_word_and_none_without_replaceable_words(near):
    text = "the novel was in it and it was there"  # one replaceable word
    for seed in range(20):  # a tiny rate would often replace nothing: one word is then taken
        assert augment_text(text, random.Random(seed), near, rate=1e-6) == "the book was in it and it was there"
    assert augment_text("it was in the 42", random.Random(0), near, rate=1.0) is None
    assert augment_copies("it was in the 42", None, 3, 0.5, 1, near) == []


def test_copies_are_deterministic_in_seed_and_text_and_differ_between_copies(tokenizer):
    near = Neighbours(tokenizer, planted(tokenizer, {}), k=10)
    text = "My sister borrowed the novel after work and found the ending gripping and the plot clumsy."
    a = augment_copies(text, None, 4, 0.5, 7, near)
    assert a == augment_copies(text, None, 4, 0.5, 7, Neighbours(tokenizer, planted(tokenizer, {}), k=10))
    assert len(a) == 4 and len({x for x, _ in a}) == 4 and all(x != text and b is None for x, b in a)
    assert augment_copies(text, None, 4, 0.5, 8, near) != a
    # a pair: both segments augmented
    pair = augment_copies("the kettle was rusty", "the kettle is old", 2, 1.0, 1, near)
    assert len(pair) == 2 and all(x != "the kettle was rusty" and y != "the kettle is old" for x, y in pair)


def test_mark_replacements(near):
    original = "The novel was gripping, so gripping."
    augmented = augment_text(original, random.Random(3), near, rate=1.0)
    assert mark_replacements(original, augmented) == "The [novel->book] was [gripping->thrilling], so [gripping->thrilling]."
    assert mark_replacements(original, augmented, max_words=3) == "The [novel->book] was ..."
    assert len(WORD.findall(original)) == len(WORD.findall(augmented))


def test_learning_a_corpus_at_once_finds_the_pieces_one_lookup_at_a_time_would(tokenizer):
    emb = planted(tokenizer, {})
    texts = ["Unfotrunately the novel's ending, a GRIPPING one, was 2x better than the kettle.", "Bollywood stories"]
    lazy, batched = Neighbours(tokenizer, emb, k=3), Neighbours(tokenizer, emb, k=3)
    batched.learn(texts)
    assert [batched.pieces(t) for t in texts] == [lazy.pieces(t) for t in texts]
    assert all(batched.of(p) == lazy.of(p) for t in texts for _, _, p in lazy.pieces(t))
