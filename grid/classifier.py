"""Keyword classifier: free-text description (Chinese or English) -> ranked type candidates.

Scoring, per type (deterministic, no model files):
- Chinese keywords (and the Chinese type name) match as substrings; a match weighs its
  length in characters (1.5 for one character). A matched keyword inside a longer
  matched keyword of the same type does not count twice.
- English keywords (and the English type name) match as whole token sequences (crude
  suffix stemming: ies, ing, ed, s); a match weighs 1.5 per token, longest first.
- Fuzzy Chinese: each character bigram of the text that occurs in the type's keywords
  but in no matched keyword adds 0.4 (reported in ``matched`` as ``"~<bigram>"``).
- Every weight is divided by sqrt(number of types sharing that keyword or bigram).
The raw sum ``r`` becomes ``score = r / (r + 2)`` in [0, 1); ranking uses ``r``, ties by code.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from grid.taxonomy import Taxonomy, default_taxonomy

DEFAULT_THRESHOLD = 0.4  # score below this (raw < 1.33) -> unclassified, manual triage
BIGRAM_WEIGHT = 0.4
EN_TOKEN_WEIGHT = 1.5
ZH_SINGLE_WEIGHT = 1.5
MAX_PHRASE = 8  # longest English phrase looked up, in tokens

_CJK = re.compile(r"[\u3400-\u9fff]+")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Candidate:
    """A ranked type candidate with the keywords that matched."""

    type_code: str
    score: float
    matched: list[str] = field(default_factory=list)
    count: str | None = None  # "single" / "gathered" for types with count cues (0901)


def normalize(text: str) -> str:
    """NFKC (full-width -> half-width) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def _stem(word: str) -> str:
    """Crude suffix stripping (ies, ing, ed, s); applied alike to keywords and text."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokens(text: str) -> list[str]:
    """English word tokens, lower-cased and lightly stemmed."""
    return [_stem(w) for w in _WORD.findall(normalize(text))]


def bigrams(text: str) -> set[str]:
    """Character bigrams inside runs of Chinese characters."""
    out: set[str] = set()
    for run in _CJK.findall(text):
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return out


class Classifier:
    """Ranks taxonomy types for a description by keyword evidence."""

    def __init__(self, taxonomy: Taxonomy | None = None, *, fuzzy: bool = True) -> None:
        self.taxonomy = taxonomy or default_taxonomy()
        self.fuzzy = fuzzy
        zh: dict[str, set[str]] = defaultdict(set)
        en: dict[tuple[str, ...], set[str]] = defaultdict(set)
        self._en_label: dict[tuple[str, ...], str] = {}
        for t in self.taxonomy.types.values():
            for kw in [*t.keywords_zh, *t.name_zh.split("/")]:
                kw = normalize(kw).strip()
                if kw:
                    zh[kw].add(t.code)
            for kw in [*t.keywords_en, t.name_en]:
                phrase = tuple(tokens(kw))
                if phrase:
                    en[phrase].add(t.code)
                    self._en_label.setdefault(phrase, kw.lower())
        self._zh = {k: sorted(v) for k, v in zh.items()}
        by_first: dict[str, list[str]] = defaultdict(list)
        for kw in sorted(self._zh):
            by_first[kw[0]].append(kw)
        self._zh_by_first = dict(by_first)
        self._en = {k: sorted(v) for k, v in en.items()}
        big: dict[str, set[str]] = defaultdict(set)
        for kw, codes in self._zh.items():
            for b in bigrams(kw):
                big[b].update(codes)
        self._bigrams = {k: sorted(v) for k, v in big.items()}

    @staticmethod
    def _zh_weight(kw: str) -> float:
        return ZH_SINGLE_WEIGHT if len(kw) == 1 else float(len(kw))

    def _raw(self, description: str) -> dict[str, tuple[float, list[str]]]:
        """Type code -> (raw score, what matched): Chinese keywords, then English phrases,
        then (fuzzy) Chinese bigrams."""
        text = normalize(description)
        scores: dict[str, float] = defaultdict(float)
        matched: dict[str, list[str]] = defaultdict(list)
        self._zh_scores(text, scores, matched)
        self._en_scores(text, scores, matched)
        if self.fuzzy:
            self._bigram_scores(text, scores, matched)
        return {c: (s, matched[c]) for c, s in scores.items() if s > 0}

    def _zh_scores(self, text: str, scores: dict[str, float],
                   matched: dict[str, list[str]]) -> None:
        hits: dict[str, list[str]] = defaultdict(list)
        for ch in sorted(set(text) & self._zh_by_first.keys()):
            for kw in self._zh_by_first[ch]:
                if kw in text:
                    for code in self._zh[kw]:
                        hits[code].append(kw)
        for code, kws in hits.items():
            for kw in kws:
                if any(kw != other and kw in other for other in kws):
                    continue  # counted within a longer match
                scores[code] += self._zh_weight(kw) / math.sqrt(len(self._zh[kw]))
                matched[code].append(kw)

    def _en_scores(self, text: str, scores: dict[str, float],
                   matched: dict[str, list[str]]) -> None:
        words = tokens(text)
        seen: set[tuple[str, tuple[str, ...]]] = set()
        spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for n in range(min(MAX_PHRASE, len(words)), 0, -1):  # longest first
            for i in range(len(words) - n + 1):
                phrase = tuple(words[i : i + n])
                codes = self._en.get(phrase, ())
                for code in codes:
                    if (code, phrase) in seen or any(a <= i and i + n <= b for a, b in spans[code]):
                        continue  # counted already, or inside a longer match of the same type
                    seen.add((code, phrase))
                    spans[code].append((i, i + n))
                    scores[code] += EN_TOKEN_WEIGHT * n / math.sqrt(len(codes))
                    matched[code].append(self._en_label[phrase])

    def _bigram_scores(self, text: str, scores: dict[str, float],
                       matched: dict[str, list[str]]) -> None:
        for b in sorted(bigrams(text)):
            for code in self._bigrams.get(b, ()):
                if any(b in kw for kw in matched[code]):
                    continue
                scores[code] += BIGRAM_WEIGHT / math.sqrt(len(self._bigrams[b]))
                matched[code].append("~" + b)

    def classify(self, description: str, top: int = 5) -> list[Candidate]:
        """The ``top`` best candidates, best first (empty when nothing matches)."""
        raw = self._raw(description)
        ranked = sorted(raw.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
        return [Candidate(code, round(r / (r + 2.0), 4), m, count_hint(description, code))
                for code, (r, m) in ranked]

    def best(self, description: str, threshold: float = DEFAULT_THRESHOLD) -> Candidate | None:
        """The best candidate, or ``None`` ("unclassified") when its score is below threshold."""
        found = self.classify(description, top=1)
        if not found or found[0].score < threshold:
            return None
        return found[0]


# --- how many: one vendor or gathered stalls ----------------------------------------------

COUNT_CUES_FILE = Path(__file__).parent / "data" / "count_cues.yaml"
COUNTS = ("gathered", "single")  # tried in this order: a text with both cues is "gathered"


@cache
def count_cues(path: Path = COUNT_CUES_FILE
               ) -> dict[str, dict[str, tuple[re.Pattern[str], ...]]]:
    """type code -> {"gathered"|"single": compiled cues} from ``count_cues.yaml``."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out: dict[str, dict[str, tuple[re.Pattern[str], ...]]] = {}
    for code, spec in data.items():
        unknown = set(spec) - set(COUNTS)
        if unknown:
            raise ValueError(f"{path.name}: {code}: unknown count(s) {sorted(unknown)}; "
                             f"use {', '.join(COUNTS)}")
        out[str(code)] = {k: tuple(re.compile(p) for p in spec.get(k) or []) for k in COUNTS}
    return out


def count_hint(description: str, type_code: str | None) -> str | None:
    """``"gathered"``, ``"single"`` or ``None`` (the text says neither, or the type has no
    count cues): how many vendors (stalls, ...) the description of a ``type_code`` report
    speaks of. Gathering cues win over single ones."""
    cues = count_cues().get(type_code or "")
    if not cues or not description:
        return None
    text = normalize(description)
    for count in COUNTS:
        if any(p.search(text) for p in cues[count]):
            return count
    return None
