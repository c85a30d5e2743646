"""A deterministic multi-domain text-classification generator (real English words).

The *world* is fixed (it does not depend on the seed): every domain has its own
topic nouns and verbs, a few private cue words, and a window of "ambiguous"
words whose meaning depends on the domain (neighbouring domains disagree on
them, so a cue learnt in one domain is wrong in the next). Shared cues mean the
same in every domain. The seed only drives sampling.

  single: a review-like text; the label (a sentiment scale of 2..5 points) wins
    a vote of 2-3 supporting cues against at most one distractor; cues may be
    negated (2 labels), so neither one keyword nor the domain settles it.
  pair: NLI-like; the premise mentions one entity and describes another
    ("the <entity> is <word>"), the hypothesis makes a claim: a same-pole word
    about the described entity = entailment, the opposite pole or a negated
    synonym = contradiction, another attribute or the right attribute of the
    wrong entity = neutral (2 labels: entailment / not_entailment). Measured
    with MiniLM-L6 (lr 5e-5, 64 tokens): ~80% needs ~300 steps, e.g. 1,200
    examples per domain for 2 epochs; 400 per domain stays near chance.
Label noise flips a ``label_noise`` share of the *training* labels (from a
separate random stream, so texts do not change with it); dev and test stay
clean so that scores measure what was learnt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hrkd_cli.data.corpus import Example, RawCorpus, stable_seed
from hrkd_cli.errors import HrkdError


@dataclass(frozen=True)
class Topic:
    nouns: tuple[str, ...]
    verbs: tuple[str, ...]  # past tense
    good: tuple[str, ...]  # private cues / private attribute poles
    bad: tuple[str, ...]


def _t(nouns: str, verbs: str, good: str, bad: str) -> Topic:
    return Topic(*(tuple(s.split()) for s in (nouns, verbs, good, bad)))


TOPICS: dict[str, Topic] = {
    "books": _t("novel chapter author plot ending story edition poem", "read finished borrowed reread", "gripping insightful witty", "preachy padded clumsy"),
    "films": _t("movie scene actor script soundtrack director sequel cast", "watched streamed rented saw", "cinematic moving suspenseful", "wooden cheesy overacted"),
    "gadgets": _t("phone charger battery screen cable tablet speaker headset", "charged installed plugged tested", "responsive durable crisp", "laggy flimsy glitchy"),
    "kitchen": _t("blender kettle skillet toaster knife pan mixer lid", "cooked washed baked heated", "sturdy spotless efficient", "rusty greasy wobbly"),
    "music": _t("album song guitar chorus singer melody lyrics drummer", "heard played recorded downloaded", "catchy soulful melodic", "tuneless shrill monotonous"),
    "games": _t("console controller level puzzle mission boss quest arcade", "unlocked beat replayed completed", "addictive immersive rewarding", "buggy unfair tedious"),
    "garden": _t("hose shovel rake seed tomato lawn fence planter", "planted watered trimmed dug", "lush hardy fragrant", "wilted leaky brittle"),
    "travel": _t("hotel suitcase flight guide room beach tour luggage", "booked packed visited toured", "scenic spacious relaxing", "cramped overpriced dirty"),
    "toys": _t("doll puppet robot kite teddy crayon wagon marble", "assembled wrapped painted gave", "colorful educational charming", "toxic fragile dull"),
    "sports": _t("ball racket helmet bike glove sneaker jersey net", "trained kicked swung climbed", "lightweight breathable comfortable", "clunky stiff bulky"),
}
# Domains beyond TOPICS: a name and eight nouns each, with generic verbs and no
# private words of their own (their private cues are their ambiguous words).
_SPARE = [
    ("lighting", "lamp bulb shade switch socket wire bracket dimmer"),
    ("office", "pen notebook stapler folder binder marker envelope ruler"),
    ("bags", "wallet purse strap buckle zipper pocket clasp lining"),
    ("camping", "tent lantern compass backpack stove canteen tarp stake"),
    ("crafts", "brush canvas easel palette frame sketch pencil glue"),
    ("watches", "watch clock alarm dial bezel chime pendulum timer"),
    ("bedding", "mattress pillow blanket sheet quilt duvet cushion bedspread"),
    ("hardware", "drill hammer wrench saw ladder toolbox chisel clamp"),
    ("pets", "leash collar kennel treat cage litter aquarium bowl"),
    ("beauty", "lotion shampoo soap razor perfume comb mirror towel"),
    ("computers", "printer scanner monitor keyboard mouse router modem webcam"),
    ("drinkware", "bottle cup mug jar flask thermos pitcher straw"),
    ("furniture", "sofa chair table shelf desk drawer cabinet stool"),
    ("automotive", "car tire engine brake wheel bumper wiper dashboard"),
    ("clothing", "coat scarf boot jacket sweater hat belt mitten"),
    ("cameras", "camera lens tripod flash sensor shutter filter zoom"),
]
SPARE_TOPICS = {name: _t(nouns, "used bought tried kept", "", "") for name, nouns in _SPARE}
# Domain-dependent words: a domain uses a sliding window of this list.
AMBIGUOUS = (
    "long quiet heavy light dark loud simple cold soft bright thin thick "
    "hard sweet wild plain busy tight deep raw dry hot sharp warm"
).split()

SCALE = {  # shared cues, from most negative to most positive
    "very negative": "terrible awful horrible dreadful useless pathetic",
    "negative": "poor weak disappointing mediocre bland lacking",
    "neutral": "average ordinary okay acceptable passable adequate",
    "positive": "good nice pleasant decent enjoyable satisfying",
    "very positive": "excellent wonderful superb outstanding fantastic brilliant",
}
SINGLE_LABELS = {
    2: [("negative", ("very negative", "negative")), ("positive", ("positive", "very positive"))],
    3: [("negative", ("very negative", "negative")), ("neutral", ("neutral",)), ("positive", ("positive", "very positive"))],
    4: [(n, (n,)) for n in ("very negative", "negative", "positive", "very positive")],
    5: [(n, (n,)) for n in SCALE],
}
PAIR_LABELS = {2: ["entailment", "not_entailment"], 3: ["entailment", "neutral", "contradiction"]}
# Shared attributes for the pair task: (pole 0 words, pole 1 words).
DIMENSIONS = [
    ("big large huge", "small tiny little"),
    ("cheap affordable inexpensive", "expensive costly pricey"),
    ("new modern recent", "old ancient dated"),
    ("fast quick rapid", "slow sluggish gradual"),
    ("popular famous beloved", "unknown obscure forgotten"),
    ("clean tidy neat", "messy filthy grimy"),
]
DIMENSIONS = [tuple(tuple(p.split()) for p in d) for d in DIMENSIONS]

PEOPLE = ["I", "We", "My sister", "My neighbour", "My father", "A friend", "Our teacher", "My colleague"]
TIMES = ["last week", "over the summer", "on a rainy weekend", "after work", "during the holidays", "in the spring", "yesterday", "twice this month"]
FILLERS = [
    "It arrived on a Tuesday.",
    "The box was plain and brown.",
    "I paid with a gift card.",
    "Shipping took about four days.",
    "My cousin has the same one.",
    "I am writing this from home.",
    "We ordered it online.",
    "The price was the usual one.",
    "I had seen it in a shop before.",
    "This is my second review here.",
]
CUE_FORMS = ["the {n} was {w}", "the {n} felt {w}", "honestly the {n} is {w}", "I found the {n} {w}", "overall it seemed {w}"]
NEG_FORMS = ["the {n} was not {w}", "I would not call the {n} {w}", "the {n} is never {w}"]
FACT_FORMS = ["the {n} was {w}", "the {n} seemed rather {w}", "everyone agreed that the {n} is {w}", "my friend thought the {n} looked {w}"]
HYP_FORMS = ["The {n} is {w}.", "That {n} was {w}.", "Someone said the {n} looked {w}."]
HYP_NEG_FORMS = ["The {n} is not {w}.", "That {n} was never {w}."]


def domain_names(n: int) -> list[str]:
    """The first ``n`` domain names: the hand-written topics, then the spare ones."""
    names = list(TOPICS) + list(SPARE_TOPICS)
    if n > len(names):
        raise HrkdError(f"data.synthetic.num_domains = {n}: at most {len(names)} domains can be generated")
    return names[:n]


def topic(name: str) -> Topic:
    return TOPICS[name] if name in TOPICS else SPARE_TOPICS[name]


def ambiguous_window(index: int, size: int) -> list[str]:
    """Domain ``index``'s ambiguous words: a window that overlaps the next domain's by half."""
    start = index * (size // 2)
    return [AMBIGUOUS[(start + j) % len(AMBIGUOUS)] for j in range(size)]


# ---------------------------------------------------------------- single texts


class SingleWorld:
    """Which word supports which label, per domain."""

    def __init__(self, num_labels: int, names: list[str]):
        self.labels = [name for name, _ in SINGLE_LABELS[num_labels]]
        self.shared = [[w for g in groups for w in SCALE[g].split()] for _, groups in SINGLE_LABELS[num_labels]]
        self.private: dict[str, list[list[str]]] = {}
        for i, d in enumerate(names):
            cues: list[list[str]] = [[] for _ in range(num_labels)]
            t = topic(d)
            cues[0] += t.bad
            cues[-1] += t.good
            # Ambiguous word m of the window supports label (m + i) % K: the next
            # domain shifts every shared word to another label.
            start = i * num_labels
            for j in range(2 * num_labels):
                m = start + j
                cues[(m + i) % num_labels].append(AMBIGUOUS[m % len(AMBIGUOUS)])
            self.private[d] = cues


def _single_text(rng: random.Random, world: SingleWorld, d: str, y: int) -> str:
    t, k = topic(d), len(world.labels)
    support = [y] * (2 if rng.random() < 0.6 else 3)
    if rng.random() < 0.5:
        support.append(rng.choice([z for z in range(k) if z != y]))  # one distractor
    clauses = []
    for label in support:
        negate = k == 2 and rng.random() < 0.2
        cue_label = 1 - label if negate else label
        lexicon = world.shared[cue_label] if rng.random() < 0.45 else world.private[d][cue_label]
        form = rng.choice(NEG_FORMS if negate else CUE_FORMS)
        clauses.append(form.format(n=rng.choice(t.nouns), w=rng.choice(lexicon)))
    rng.shuffle(clauses)
    sentences = [f"{rng.choice(PEOPLE)} {rng.choice(t.verbs)} the {rng.choice(t.nouns)} {rng.choice(TIMES)}."]
    while clauses:
        take = 2 if len(clauses) >= 2 and rng.random() < 0.5 else 1
        part = f" {rng.choice(['and', 'but', 'while'])} ".join(clauses[:take])
        clauses = clauses[take:]
        sentences.append(part[0].upper() + part[1:] + ".")
    sentences += rng.sample(FILLERS, rng.choice([1, 1, 2]))
    head, rest = sentences[0], sentences[1:]
    rng.shuffle(rest)
    return " ".join([head] + rest)


# ---------------------------------------------------------------- sentence pairs


class PairWorld:
    """Attribute dimensions per domain: shared ones plus private ones (own words, ambiguous window)."""

    def __init__(self, names: list[str]):
        self.dims: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        self.private: dict[str, list[int]] = {}
        for i, d in enumerate(names):
            t = topic(d)
            dims = list(DIMENSIONS)
            private = []
            if t.good and t.bad:
                private.append(len(dims))
                dims.append((t.good, t.bad))
            # Ambiguous window (a, b, c, d): even domains pair {a, b} | {c, d}, odd
            # ones {a, c} | {b, d}; windows overlap by two words, so a pair of
            # words that agree in one domain contradict each other in the next.
            a, b, c, e = ambiguous_window(i, 4)
            private.append(len(dims))
            dims.append(((a, b), (c, e)) if i % 2 == 0 else ((a, c), (b, e)))
            self.dims[d], self.private[d] = dims, private


def _pair_texts(rng: random.Random, world: PairWorld, d: str, relation: str) -> tuple[str, str]:
    t, dims = topic(d), world.dims[d]
    e1, e2, e3 = rng.sample(t.nouns, 3)  # described, only mentioned, absent
    target = rng.choice(world.private[d]) if rng.random() < 0.5 else rng.randrange(len(DIMENSIONS))
    pole = rng.randrange(2)
    fact = rng.choice(FACT_FORMS).format(n=e1, w=rng.choice(dims[target][pole]))
    premise = [f"{rng.choice(PEOPLE)} {rng.choice(t.verbs)} the {e2} {rng.choice(TIMES)}.", fact[0].upper() + fact[1:] + "."]
    premise += rng.sample(FILLERS, rng.choice([0, 1, 1, 2]))
    said = fact.rsplit(" ", 1)[1]  # the premise's own word
    # Same-word overlap is frequent in every class, so overlap alone decides nothing.
    same = said if rng.random() < 0.5 else rng.choice(dims[target][pole])
    opposite = rng.choice(dims[target][1 - pole])
    if relation == "entailment":
        hyp = rng.choice(HYP_FORMS).format(n=e1, w=same)
    elif relation == "contradiction":
        if rng.random() < 0.4:
            hyp = rng.choice(HYP_NEG_FORMS).format(n=e1, w=same)
        else:
            hyp = rng.choice(HYP_FORMS).format(n=e1, w=opposite)
    else:  # neutral: an attribute the premise does not state
        kind = rng.random()
        if kind < 0.5:
            other = rng.choice([j for j in range(len(dims)) if j != target])
            subject, word = e1, rng.choice(dims[other][rng.randrange(2)])
        else:  # the right attribute, the wrong entity (mentioned, or absent)
            subject, word = (e2 if kind < 0.75 else e3), rng.choice([same, opposite])
        forms = HYP_NEG_FORMS if rng.random() < 0.3 else HYP_FORMS
        hyp = rng.choice(forms).format(n=subject, w=word)
    return " ".join(premise), hyp


# ---------------------------------------------------------------- corpus


def _noisy(rng: random.Random, label: int, num_labels: int, rate: float) -> int:
    """``label``, or with probability ``rate`` another one; always draws twice so texts never shift."""
    flip, alt = rng.random(), rng.randrange(num_labels - 1)
    if flip < rate:
        return alt if alt < label else alt + 1
    return label


def generate_synthetic(cfg, seed: int) -> RawCorpus:
    """A RawCorpus with fixed train/dev/test per domain, deterministic in (cfg, seed)."""
    task, k = getattr(cfg, "task", "single"), getattr(cfg, "num_labels", 2)
    names = domain_names(getattr(cfg, "num_domains", 4))
    if task == "pair":
        if k not in PAIR_LABELS:
            raise HrkdError(f"data.synthetic.num_labels = {k}: the pair task has 2 or 3 labels")
        labels, world = PAIR_LABELS[k], PairWorld(names)
        relations = ["entailment", "not"] if k == 2 else ["entailment", "neutral", "contradiction"]
    elif task == "single":
        if k not in SINGLE_LABELS:
            raise HrkdError(f"data.synthetic.num_labels = {k}: the single task has 2 to 5 labels")
        world = SingleWorld(k, names)
        labels = world.labels
    else:
        raise HrkdError(f"data.synthetic.task = {task!r}: expected 'single' or 'pair'")
    sizes = {
        "train": getattr(cfg, "train_per_domain", 400),
        "dev": getattr(cfg, "dev_per_domain", 100),
        "test": getattr(cfg, "test_per_domain", 200),
    }
    noise = getattr(cfg, "label_noise", 0.0)
    out: dict[str, dict[str, list[Example]]] = {s: {} for s in sizes}
    for d in names:
        for split, n in sizes.items():
            rng = random.Random(stable_seed("hrkd-synthetic", seed, task, k, d, split))
            noise_rng = random.Random(stable_seed("hrkd-synthetic-noise", seed, d, split))
            ys = [j % k for j in range(n)]  # balanced, then shuffled
            rng.shuffle(ys)
            examples = []
            for y in ys:
                if task == "pair":
                    rel = relations[y] if k == 3 or y == 0 else rng.choice(["neutral", "contradiction"])
                    text, text_b = _pair_texts(rng, world, d, rel)
                else:
                    text, text_b = _single_text(rng, world, d, y), None
                label = _noisy(noise_rng, y, k, noise) if split == "train" else y
                examples.append(Example(text, label, text_b))
            out[split][d] = examples
    return RawCorpus(
        task="synthetic",
        label_names=list(labels),
        domains=names,
        pools=out["train"],
        devs=out["dev"],
        tests=out["test"],
        text_pair=task == "pair",
    )
