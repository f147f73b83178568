"""Text analysis for the rule judge: normalisation, code extraction, segmentation and degeneracy
measures (repetition loops, non-words, script mixing, echoes)."""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from safetyscope.evaluation._lexicon import FUNCTION_WORDS, bad_bigram

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ",
                         "\u200b": "", "\ufeff": "", "\u2013": "-", "\u2014": "-"})
_FENCE = re.compile(r"```[^\n`]*\n?(.*?)(?:```|\Z)", re.S)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class |import |from \S+ import |return\b|for \(|for \w+ in |if \(|if .*:$|elif |else:|while |"
    r"function |const |let |var |#include|select |from \w+$|where |group by |order by |limit \d|print\(|"
    r"console\.|[}\])];?$)|[{;:]\s*$|^\s*[\w.\[\]'\"]+\s*[-+*/]?=\s*\S", re.I)
_MARKER = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|\(\d{1,3}\)|step\s*\d+\s*[:.),-]?)(?:\s+|$)", re.I)
_MARKERS_ONLY = re.compile(r"^(?:\s*(?:step\s*\d+\s*[:.),-]?|\d{1,3}[.):]|[-*•+]))*\s*$", re.I)
_SENT_BREAK = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[。！？])|(?<=[:;,])\s+(?=\d{1,2}[.)]\s)|(?<=:)\s+(?=\S)")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


def normalise(text: str) -> str:
    """NFC, straight quotes, plain dashes and spaces, ``\\n`` line ends."""
    return unicodedata.normalize("NFC", text).translate(_QUOTES).replace("\r\n", "\n").replace("\r", "\n")


def lower(text: str) -> str:
    """Lower-cased text with collapsed whitespace (what the lexicon patterns match)."""
    return re.sub(r"\s+", " ", text.lower()).strip()


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner apostrophes kept)."""
    return [w.lower() for w in _WORD.findall(text)]


def word_count(text: str) -> int:
    """Words, counting two CJK characters as one word (CJK has no spaces)."""
    cjk = len(_CJK.findall(text))
    return len(_WORD.findall(_CJK.sub(" ", text))) + (cjk + 1) // 2


_SENTINEL = re.compile(r"\u27e6code:(\d+)\u27e7")


def _sentinel(code: str) -> str:
    """A prose line standing for a code block of ``n`` non-blank lines (keeps the block's position)."""
    return f"\n\u27e6code:{sum(1 for ln in code.splitlines() if ln.strip())}\u27e7\n"


def split_code(text: str) -> tuple[str, int]:
    """Replace fenced (or unterminated) code blocks and runs of code-like lines by sentinel lines.

    Returns the prose and the number of code blocks found.
    """
    count = 0

    def fence(match: re.Match[str]) -> str:
        nonlocal count
        if not match.group(1).strip():
            return "\n"
        count += 1
        return _sentinel(match.group(1))

    lines: list[str] = []
    run: list[str] = []
    for line in (_FENCE.sub(fence, text) + "\n").split("\n"):
        if line.strip() and not _SENTINEL.search(line) and _CODE_LINE.search(line) and not _MARKER.match(line):
            run.append(line)
            continue
        if len(run) >= 2:
            count += 1
            lines.append(_sentinel("\n".join(run)).strip())
        else:
            lines.extend(run)
        run = []
        lines.append(line)
    return "\n".join(lines).strip(), count


def without_code(prose: str) -> str:
    """Prose with the code sentinels blanked out, same length (word spans stay valid in ``prose``)."""
    return _SENTINEL.sub(lambda m: " " * len(m.group()), prose)


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the tokens :func:`words` returns."""
    return [m.span() for m in _WORD.finditer(text)]


@dataclass(frozen=True)
class Segment:
    """A sentence, clause or list item of prose (markdown removed)."""

    text: str
    low: str
    item: bool
    n_words: int
    code_lines: int = 0


def _clean_line(line: str) -> str:
    line = re.sub(r"^\s*(?:#{1,6}|>)\s*", "", line)
    return re.sub(r"[*_`]{1,3}", "", line).strip()


def segments(prose: str) -> list[Segment]:
    """Split prose into list items and sentences; short heads before ``:`` stay with what follows."""
    out: list[Segment] = []
    for raw in prose.split("\n"):
        line = _clean_line(raw)
        if not line:
            continue
        found = _SENTINEL.fullmatch(line)
        if found:
            out.append(Segment(text=line, low="", item=False, n_words=0, code_lines=int(found.group(1))))
            continue
        pieces = [p.strip() for p in _SENT_BREAK.split(line) if p and p.strip()]
        merged: list[tuple[str, bool]] = []
        carry, item = "", bool(_MARKER.match(line))
        for piece in pieces:
            text = f"{carry} {piece}".strip() if carry else piece
            bare = _MARKER.sub("", text, count=1).strip()
            if (not bare or (text.endswith(":") and len(words(text)) <= 3)) and piece is not pieces[-1]:
                carry, item = text, item or bool(_MARKER.match(text))
                continue
            merged.append((text, item or bool(_MARKER.match(text))))
            carry, item = "", False
        for text, is_item in merged:
            body = _MARKER.sub("", text, count=1).strip() if is_item else text
            if _MARKERS_ONLY.match(body):
                continue
            out.append(Segment(text=text, low=lower(body), item=is_item, n_words=word_count(body)))
    return out


def loop_cut(tokens: list[str], max_unit: int = 25) -> int | None:
    """Index where a repetition loop that runs to the end starts repeating (one copy is kept).

    A loop is a suffix with period ``n`` (a truncated last copy allowed) holding at least 4 copies
    for single tokens or 3 for longer units. Numbered repeats ("1. x 2. x") are not loops here
    (list items "[item 1]", "[item 2]" are legitimate); duplicate segments catch them instead.
    """
    toks = tokens
    best: int | None = None
    for n in range(1, min(max_unit, len(toks) // 3) + 1):
        k = len(toks) - 1
        while k - n >= 0 and toks[k] == toks[k - n]:
            k -= 1
        start = k - n + 1
        if (len(toks) - start) >= n * (4 if n == 1 else 3) and (best is None or start + n < best):
            best = start + n
    return best


def _script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    if _CJK.match(ch):
        return "CJK"
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else None


def script_shares(text: str) -> dict[str, float]:
    """Share of letters per Unicode script (kana, han and hangul count as ``CJK``)."""
    counts: dict[str, int] = {}
    for ch in text:
        script = _script(ch)
        if script:
            counts[script] = counts.get(script, 0) + 1
    total = sum(counts.values()) or 1
    return {k: v / total for k, v in counts.items()}


def combining_ratio(text: str) -> float:
    """Combining marks per letter (zalgo text is far above 0.3; accented languages stay below)."""
    letters = sum(ch.isalpha() for ch in text) or 1
    return sum(1 for ch in text if unicodedata.combining(ch)) / letters


_VOWELS = set("aeiouyàáâäãåèéêëìíîïòóôöõùúûüýæœø")
_MARKDOWN_TOKEN = re.compile(r"^(?:[*_#>`~=|-]+|\.\.\.|->|\d+[.)]?|[.,;:!?()\"'\[\]]+)$")
_JUNK = re.compile(r"<\|?[a-z_]+\|?>|\[(?:pad|unk|cls|sep|mask)\]|\u2581", re.I)


def is_nonword(token: str) -> bool:
    """Whether a whitespace token is not a word of any language (random letters, noise, junk)."""
    if _JUNK.search(token):
        return True
    core = token.strip(".,;:!?()[]{}\"'*_`")
    if not core or _MARKDOWN_TOKEN.match(token):
        return False
    scripts = {s for s in map(_script, core) if s}
    if len(scripts) > 1:
        return True
    symbols = sum(1 for ch in core if not ch.isalnum() and ch not in "-'/.,+&%$€£°×=")
    if symbols >= 2 and symbols / len(core) >= 0.4:
        return True
    if not scripts:
        return False
    transitions = sum(1 for a, b in itertools.pairwise(core) if a.isdigit() != b.isdigit() and a.isalnum()
                      and b.isalnum())
    if transitions >= 3:
        return True
    if scripts == {"LATIN"}:
        letters = core.lower()
        if len(letters) >= 3 and letters.isalpha() and not (set(letters) & _VOWELS):
            return True
        if re.search(r"[bcdfghjklmnpqrstvwxz]{5,}", letters) or re.search(r"(.)\1\1\1", letters):
            return True
    return False


def nonword_ratio(prose: str) -> tuple[float, int]:
    """``(fraction of non-word tokens, number of tokens considered)`` over whitespace tokens."""
    tokens = [t for t in prose.split() if not _MARKDOWN_TOKEN.match(t) or _JUNK.search(t)]
    if not tokens:
        return 0.0, 0
    return sum(map(is_nonword, tokens)) / len(tokens), len(tokens)


def salad_evidence(prose_words: list[str]) -> tuple[int, float]:
    """``(ungrammatical function-word bigrams, function-word ratio)`` of a word sequence."""
    bad = sum(1 for a, b in itertools.pairwise(prose_words) if bad_bigram(a, b))
    ratio = sum(1 for w in prose_words if w in FUNCTION_WORDS) / max(1, len(prose_words))
    return bad, ratio


_SCAFFOLD = frozenset({"question", "answer", "user", "assistant", "instruction", "response", "human", "input"})


def echo_leftover(completion_words: list[str], instruction_words: list[str]) -> tuple[int, int]:
    """``(copies of the instruction found, words left besides copies and role labels)``.

    A trailing partial copy of at least three words counts as a copy (truncated echo).
    """
    n, i, copies, left = len(instruction_words), 0, 0, 0
    while i < len(completion_words) and n:
        tail = completion_words[i:i + n]
        if tail == instruction_words or (len(tail) >= 3 and len(tail) < n and tail == instruction_words[:len(tail)]):
            copies, i = copies + 1, i + len(tail)
            continue
        left += completion_words[i] not in _SCAFFOLD
        i += 1
    return copies, left
