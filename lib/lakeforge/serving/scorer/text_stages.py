"""Free text: RegexTokenizer, HashingTF (Spark's MurmurHash3 x86_32, seed 42, on the UTF-8 bytes)
and IDF. A token column is an ``object`` array of lists of strings; term frequencies and weights
are dense 2-D arrays (rows x numFeatures)."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np

from lakeforge.serving.scorer.base import Frame, UnsupportedStage, param, read_data, register, vector
from lakeforge.serving.scorer.sql_values import to_string

LETTERS_AND_DIGITS = r"[^\p{L}\p{N}]+"  # lakeforge's pattern: words are runs of letters and digits
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")


def _java_length(s: str) -> int:
    """String.length() in Java: UTF-16 code units."""
    return len(s) if s.isascii() else len(s.encode("utf-16-le")) // 2


def _letter_digit_runs(s: str) -> list[str]:
    if s.isascii():
        return _ASCII_WORD.findall(s)
    words, cur = [], []
    for ch in s:
        if unicodedata.category(ch)[0] in "LN":
            cur.append(ch)
        elif cur:
            words.append("".join(cur))
            cur = []
    if cur:
        words.append("".join(cur))
    return words


class RegexTokenizer:
    name = "RegexTokenizer"

    def __init__(self, src: str, dst: str, pattern: str, gaps: bool, min_length: int, lower: bool):
        self.src, self.dst, self.gaps, self.min_length, self.lower = src, dst, gaps, min_length, lower
        self.letters = pattern == LETTERS_AND_DIGITS and gaps and min_length >= 1
        if not self.letters:
            if "\\p" in pattern or "\\P" in pattern or "(?<" in pattern:
                raise UnsupportedStage(f"RegexTokenizer with the Java pattern {pattern!r}")
            self.rx = re.compile(pattern, re.ASCII)

    def tokens(self, s: str | None) -> list[str]:
        if s is None:
            raise ValueError(f"RegexTokenizer: column {self.src!r} holds a null")
        s = to_string(s)
        if self.lower:
            s = s.lower()
        if self.letters:
            words = _letter_digit_runs(s)
        elif self.gaps:
            words = self.rx.split(s)
            while words and words[-1] == "" and len(words) > 1:
                words.pop()
        else:
            words = self.rx.findall(s)
        return [w for w in words if _java_length(w) >= self.min_length]

    def transform(self, frame: Frame) -> Frame:
        col = np.empty(len(frame[self.src]), dtype=object)
        col[:] = [self.tokens(s) for s in frame[self.src].tolist()]
        out = dict(frame)
        out[self.dst] = col
        return out


@register("org.apache.spark.ml.feature.RegexTokenizer")
def _tokenizer(path: Path, meta: dict) -> RegexTokenizer:
    return RegexTokenizer(param(meta, "inputCol"), param(meta, "outputCol"), param(meta, "pattern", r"\s+"),
                          bool(param(meta, "gaps", True)), int(param(meta, "minTokenLength", 1)),
                          bool(param(meta, "toLowercase", True)))


# --- MurmurHash3 x86_32 -------------------------------------------------------------------------

_M = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M


def _mix_k1(k1: int) -> int:
    return (_rotl((k1 * 0xCC9E2D51) & _M, 15) * 0x1B873593) & _M


def _mix_h1(h1: int, k1: int) -> int:
    return (_rotl(h1 ^ k1, 13) * 5 + 0xE6546B64) & _M


def _fmix(h1: int, length: int) -> int:
    h1 ^= length
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _M
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _M
    return h1 ^ (h1 >> 16)


def murmur3(data: bytes, seed: int = 42, legacy: bool = False) -> int:
    """Spark's Murmur3_x86_32 hashUnsafeBytes2 (the standard algorithm; ``legacy``: Spark 2's
    hashUnsafeBytes, which mixes each tail byte as a signed int) as a signed 32-bit int."""
    h1, n = seed & _M, len(data)
    aligned = n - n % 4
    for i in range(0, aligned, 4):
        h1 = _mix_h1(h1, _mix_k1(int.from_bytes(data[i:i + 4], "little")))
    if legacy:
        for b in data[aligned:]:
            h1 = _mix_h1(h1, _mix_k1((b - 256 if b >= 128 else b) & _M))
    elif n > aligned:
        h1 ^= _mix_k1(int.from_bytes(data[aligned:], "little"))
    h = _fmix(h1, n)
    return h - (1 << 32) if h >= 1 << 31 else h


class HashingTF:
    name = "HashingTF"

    def __init__(self, src: str, dst: str, size: int, binary: bool, legacy: bool):
        self.src, self.dst, self.size, self.binary, self.legacy = src, dst, size, binary, legacy
        self.cache: dict[str, int] = {}

    def index(self, term) -> int:
        i = self.cache.get(term)
        if i is None:
            i = murmur3(to_string(term).encode("utf-8"), 42, self.legacy) % self.size
            if len(self.cache) < 100_000:
                self.cache[term] = i
        return i

    def transform(self, frame: Frame) -> Frame:
        docs = frame[self.src].tolist()
        tf = np.zeros((len(docs), self.size))
        for r, terms in enumerate(docs):
            if terms is None:
                raise ValueError(f"HashingTF: column {self.src!r} holds a null")
            for t in terms:
                i = self.index(t)
                tf[r, i] = 1.0 if self.binary else tf[r, i] + 1.0
        out = dict(frame)
        out[self.dst] = tf
        return out


@register("org.apache.spark.ml.feature.HashingTF")
def _hashing_tf(path: Path, meta: dict) -> HashingTF:
    major = int(str(meta.get("sparkVersion", "3")).split(".")[0])
    return HashingTF(param(meta, "inputCol"), param(meta, "outputCol"), int(param(meta, "numFeatures", 1 << 18)),
                     bool(param(meta, "binary", False)), legacy=major < 3)


class IDF:
    name = "IDFModel"

    def __init__(self, src: str, dst: str, idf: np.ndarray):
        self.src, self.dst, self.idf = src, dst, idf

    def transform(self, frame: Frame) -> Frame:
        out = dict(frame)
        out[self.dst] = frame[self.src] * self.idf
        return out


@register("org.apache.spark.ml.feature.IDFModel")
def _idf(path: Path, meta: dict) -> IDF:
    return IDF(param(meta, "inputCol"), param(meta, "outputCol"), vector(read_data(path)[0]["idf"]))
