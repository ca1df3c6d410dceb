"""The offline model: a real LangChain chat model that answers extractively from the given passages.

It reads the tagged context the answer prompt carries (see `agents.prompts`), picks the block that
best answers the question (a paragraph, a list with its lead-in line, table rows under their header,
or a code block), quotes it whole with its citation, and streams the result word by word; when nothing
in the passages is close to the question, or the question rests on words the passages or the whole book
never use, it says so and cites nothing. Every answer ends with a label saying no language model wrote
it. It reads with the book's own tools (embeddings, the index's analyzer and vocabulary, the Markdown
block reader), which whoever builds it hands in: agents do not import tools.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

import numpy as np

from booktutor.agents.prompts import parse_answer_context

OFFLINE_MODEL_NAME = "offline-extractive"
OFFLINE_LABEL = (
    "_Offline answer: quoted from the book; no language model is configured "
    "(set OPENAI_API_KEY or OPENAI_BASE_URL for written answers)._"
)
NOT_FOUND = "I could not find this in the book."
SMALL_TALK_REPLY = (
    "Hello! I'm the tutor for this book. Ask me about anything in it, or select a passage and ask me to "
    "explain it.\n\n_Offline mode: answers are quoted from the book; no language model is configured._"
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*`\"(\[])")
_TAG_LINE = re.compile(r"^\s*(</?[A-Za-z][^>]*>\s*)+$|^\s*:::\s*$|^\s*(import|export)\s")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_ADMONITION = re.compile(r"^\s*:::\w*[^\n]*\n?|\n?\s*:::\s*$")
_FOLLOW_UP = re.compile(r"\b(it|its|that|this|these|those|they|them|there|one|ones)\b", re.I)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+#-]*")

# Tuned on the dev answer set (eval/dev-answers.jsonl), never on the unseen sets. On it, with units read
# under their page title and heading trail, the off-topic questions' best units reach 0.14-0.26 and the
# answerable ones' 0.33 and up (8-bit MiniLM, tools/embeddings.py): the threshold sits between the two.
# Questions near the book's subject that it does not cover score 0.27-0.53, among the answerable ones:
# those are told apart by MISSING_WORD_WEIGHT instead.
DECLINE_BELOW = 0.30
"""A question whose best quotable unit is less similar than this (cosine, MiniLM) is declined."""
MISSING_WORD_WEIGHT = 0.12
"""A question is declined when the word that carries most of its meaning appears nowhere in the passages,
or the words the whole book never uses together carry most of it, and carry at least this much (see
`_rests_on_missing_word`): the question's vector moves this far (1 - cosine, MiniLM) when they are taken
out. A question the book does not cover is about something the book never names ("underwater",
"swarms", "ultrasonic" weigh 0.15-0.20 in the dev set's questions, "surgical" and "surgeon" together
0.24); a learner's paraphrase of what it does answer misses everyday words that carry little of it ("gulp",
"hogs", "slick": no missing word of an answerable dev question weighs more than 0.09), and those it
misses together, which can weigh up to 0.37 ("hogs", "busy", "side", "handlers"), bring its passage closer."""
RARE_BELOW = 4.5
"""A word rarer than this in English (Zipf frequency: 4.5 is about 30 uses in a million words; "quadcopter"
2.4, "gusts" 3.1, "Rust" 3.7, against "side" 5.5 and "busy" 4.8) names a thing. A question the book does not
cover names things the book never does; a learner's paraphrase adds everyday words ("tell", "side",
"everything") that the book never uses either. Chosen on the dev set: 4.0 leaves out the drone (4.0)."""
OWN_WORD_ZIPF = 3.0
"""A word this common in English (Zipf 3: once in a million words) is a word of its own, not a misspelling,
even when the model's vocabulary cuts it in pieces ("sag" 3.2, "thingy" 3.2); misspellings are rarer
("simlation" 0, "recieve" 2.8), save a few of the commonest ("teh" 3.0), which TYPO_GAIN still reads as typos."""
UNMATCHED_BELOW = 0.40
"""A word of the question that no word piece of the passages comes this close to in context (cosine of
MiniLM's token vectors) is nowhere in them, even in other words: in the dev questions, "Rust" finds at
most 0.37 and the "micro" of micro-ROS 0.22, where a learner's "grippy" finds 0.49 and "startable" 0.43.
Chosen on the dev set (docs/answers.md): at 0.50 a paraphrase is declined (a "slick" floor the robot's
feet "slide" on), at 0.45 none; 0.40 keeps a step from it."""
MIN_TERM_CHARS = 3
"""Shorter analyzer terms (the "s" of "robot's", "e.g.") say nothing about what a question is about."""
SECOND_UNIT = 0.85
"""A second unit is quoted when it scores at least this share of the best one."""
FOLLOW_UP_CONTEXT = 0.5
"""How much a follow-up's meaning leans on the question before it (its own words count 1)."""
MAX_TABLE_ROWS = 3
"""A long table is quoted as its header and at most this many rows: those within ROW_MARGIN of the best."""
ROW_MARGIN = 0.08
SELECTION_SHARE = 0.6
"""A passage unit that is this share or more the reader's selection is not quoted to explain it."""
BEYOND_SELECTION = 0.5
"""How similar (cosine, to the question with the selection) a passage unit must be to explain a selection
in its place. On the dev set the unit chosen for each selection question scores about 0.5-0.8; a
paragraph on services, beside a selection about topics, 0.48."""
TYPO_GAIN = 0.10
"""How much closer (cosine) to the best unit the question must come, its word spelt as the book spells it,
for a word of the language to be read as a typo of the book's ("root" for "robot")."""
MAX_ANSWER_CHARS = 1600
"""A second unit is left out when the two would be longer than this."""
MAX_PARTS_ANSWER_CHARS = 2400
"""A question in parts may get one more unit per part, up to this many characters in all."""


WordVectors = Callable[[list[str]], list[tuple[list[tuple[int, int]], Any, Any]]]
"""Texts -> for each, where its words are, their vectors in context and its word pieces' vectors
(`tools.embeddings.MiniLMEmbeddings.word_vectors`)."""


@dataclass
class _Unit:
    """One quotable piece of a passage: a paragraph, a list, a table (with its rows) or a code block."""

    n: int  # the passage number; 0 is the reader's selection
    position: int
    kind: str
    text: str  # the block's Markdown, whole
    lead: str = ""  # the paragraph that introduces a list, table or code block
    heading: str = ""
    rows: list[str] = field(default_factory=list)  # a table's body rows
    header: str = ""  # a table's header and separator lines


def _clean(paragraph: str) -> str:
    """A paragraph without JSX tags or admonition fences, lines joined."""
    text = _ADMONITION.sub("", paragraph)
    text = _TAG.sub(" ", text)
    return " ".join(text.split())


def _units(n: int, text: str, blocks: Callable[[str], list[Any]], heading: str = "") -> list[_Unit]:
    """The quotable units of one passage, in order; a list, table or code block carries the paragraph that
    introduces it as its lead."""
    units: list[_Unit] = []
    previous: _Unit | None = None
    for block in blocks(text):
        if block.kind == "heading":
            heading = block.text.lstrip("#").strip()
            previous = None
            continue
        if block.kind in ("paragraph", "quote", "other"):
            if _TAG_LINE.match(block.text) and all(_TAG_LINE.match(line) or not line.strip() for line in block.text.splitlines()):
                continue
            cleaned = _clean(block.text.lstrip("> "))
            if len(cleaned.split()) < 4:
                previous = None
                continue
            previous = _Unit(n, len(units), "paragraph", cleaned, heading=heading)
            units.append(previous)
            continue
        lead = previous.text if previous is not None else ""
        unit = _Unit(n, len(units), block.kind, block.text.strip(), lead=lead, heading=heading)
        if block.kind == "table":
            lines = [line for line in block.text.strip().splitlines() if line.strip()]
            unit.header, unit.rows = "\n".join(lines[:2]), lines[2:]
        units.append(unit)
        previous = None
    kept = (_without_dangling_lead(u, units) for u in units)
    return [u for u in kept if u is not None]


def _without_dangling_lead(unit: _Unit, units: list[_Unit]) -> _Unit | None:
    """A paragraph whose last sentence ends in a colon with nothing after it in the passage (the list or
    code it introduces fell into the next chunk) loses that sentence, or is left out when nothing is left."""
    if unit.kind != "paragraph" or not unit.text.endswith(":") or any(u.lead == unit.text for u in units):
        return unit
    sentences = _SENTENCE_END.split(unit.text)[:-1]
    if not sentences:
        return None
    return _Unit(unit.n, unit.position, unit.kind, " ".join(sentences), heading=unit.heading)


def _trail(trail: list[str], heading: str) -> str:
    """A unit's page title and headings, down to the section it sits in (a passage may hold sections)."""
    above = [part for part in trail if part != heading]
    return " › ".join([*above, heading] if heading else above)


def _plain(unit_text: str) -> str:
    """Text to compare with a question: Markdown punctuation out, identifiers split into words."""
    text = re.sub(r"[`*|#>\[\]()_{}=:-]+", " ", unit_text)
    return " ".join(text.split())[:1000]


def _as_shown(unit_text: str) -> str:
    """A unit as a reader sees it on the page, for comparing with a selection: a selection is copied from
    the rendered page ("node"), a passage is the book's Markdown ("**node**")."""
    return " ".join(re.sub(r"[`*_]", "", unit_text).split()).lower()


def _repeats(unit_shown: str, selection_shown: str) -> bool:
    """Whether quoting a unit would mostly repeat the selection: it lies inside the selection, or the
    selection makes up most of it (both as `_as_shown`)."""
    if unit_shown in selection_shown:
        return True
    return selection_shown in unit_shown and len(selection_shown) >= SELECTION_SHARE * len(unit_shown)


def _lead_sentence(paragraph: str) -> str:
    """The part of a lead paragraph that introduces what follows: the whole of it when short, else its
    last sentence (the one ending in a colon, when there is one)."""
    if len(paragraph) <= 320:
        return paragraph
    sentences = _SENTENCE_END.split(paragraph)
    return sentences[-1] if sentences[-1].endswith(":") else sentences[0]


def _render(unit: _Unit, marker: str, question_vector: Any, embeddings: Embeddings) -> str:
    """A unit quoted whole, with its citation on the quoted text and its lead line in front."""
    if unit.kind == "paragraph":
        return f"{unit.text}{marker}"
    body = unit.text
    if unit.kind == "table" and len(unit.rows) > MAX_TABLE_ROWS:
        # The rows that answer, in the book's order, under the table's header.
        header_words = _plain(unit.header)
        scores = np.array(embeddings.embed_documents([f"{header_words} {_plain(r)}" for r in unit.rows])) @ question_vector
        best = float(scores.max())
        keep = sorted(np.argsort(-scores)[:MAX_TABLE_ROWS].tolist())
        keep = [i for i in keep if scores[i] >= best - ROW_MARGIN]
        body = "\n".join([unit.header, *(unit.rows[i] for i in keep)])
    # The book's own lead line, word for word; a block with none is introduced by its section's name.
    lead = _lead_sentence(unit.lead) if unit.lead else (f"From *{unit.heading}*:" if unit.heading else "From the book:")
    return f"{lead}{marker}\n\n{body}"


def extractive_answer(
    context: dict[str, Any],
    *,
    embeddings: Embeddings,
    terms: Callable[[str], list[str]],
    blocks: Callable[[str], list[Any]],
    history: list[str] | None = None,
    unused: Callable[[list[str]], set[str]] | None = None,
    spellings: Callable[[str], list[str]] | None = None,
    is_word: Callable[[str], bool] | None = None,
    zipf: Callable[[str], float] | None = None,
    word_vectors: WordVectors | None = None,
    common_slips: Callable[[str], set[str]] | None = None,
) -> str:
    """Quote the paragraph, list, table rows or code block of the passages that best answers the question,
    whole and cited, or decline when nothing there is close to it (see `OfflineChatModel` for `embeddings`,
    `terms`, `blocks`, `unused`, `spellings`, `is_word`, `zipf`, `word_vectors` and `common_slips`; `history` holds the
    reader's earlier questions, oldest first)."""
    passages = context["passages"]
    # What the reader has in front of them, as the rare-word test and the spelling of typos read it.
    passage_texts = [f"{p.get('title') or ''} {p.get('heading') or ''}\n{p['text']}" for p in passages]
    question = _spelt_as_the_book(
        context["question"], _words_of(passage_texts), terms, unused, spellings, is_word, zipf, common_slips
    )
    selection = context.get("selection")
    if not passages and not selection:
        return NOT_FOUND

    units: list[_Unit] = []
    if selection:
        units += _units(0, selection, blocks)
    quoted = {_as_shown(u.text) for u in units}
    trails: dict[int, list[str]] = {}  # passage number -> its page title and heading trail
    for passage in passages:
        heading = (passage.get("heading") or "").split(" › ")[-1]
        trails[passage["n"]] = list(dict.fromkeys(x for x in (passage.get("title"), *(passage.get("heading") or "").split(" › ")) if x))
        for unit in _units(passage["n"], passage["text"], blocks, heading):
            key = _as_shown(unit.text)
            if key not in quoted:  # the selection's own section comes back as passage [1]
                quoted.add(key)
                units.append(unit)
    if not units:
        return NOT_FOUND

    # A follow-up ("what if there's too much of it?") is read with the question before it, which says
    # what "it" is, while its own words say what is asked now and weigh more.
    follow_up = bool(history) and len(question.split()) <= 14 and bool(_FOLLOW_UP.search(question))
    # A question about a selection ("Explain this passage.") is about the selection's words too;
    # ranked on the question alone, any unit containing "explains" would win.
    asked = f"{question}\n{selection}" if selection else question
    question_terms = set(terms(asked))
    question_vector = np.array(embeddings.embed_query(asked))
    before = np.array(embeddings.embed_query(f"{history[-1]} {question}")) if follow_up else None
    if before is not None:
        question_vector = question_vector + FOLLOW_UP_CONTEXT * before
        question_vector /= np.linalg.norm(question_vector) or 1.0
    # A unit is read with its page title and heading trail, as the index embeds a chunk: "Common topics on a
    # mobile robot" says what its table holds, and "PID Control › The three terms › D: derivative" says what
    # its paragraph is about more surely than an overview page's list that mentions the same words.
    texts = [_plain(" ".join(part for part in (_trail(trails.get(u.n, []), u.heading), u.lead, u.text) if part)) for u in units]
    unit_terms = [set(terms(t)) for t in texts]
    frequency: dict[str, int] = {}
    for found in unit_terms:
        for term in found & question_terms:
            frequency[term] = frequency.get(term, 0) + 1

    unit_vectors = np.array(embeddings.embed_documents(texts))
    similarity = unit_vectors @ question_vector
    # How close the book comes to the question: a follow-up is close when it is, read with what came before.
    closest = float(similarity.max()) if before is None else float(max(similarity.max(), (unit_vectors @ before).max()))
    max_lexical = sum(math.log(1 + len(units) / f) for f in frequency.values()) or 1.0

    def score(i: int, similarity: Any = similarity, asked_terms: set[str] = question_terms, most: float = max_lexical) -> float:
        unit = units[i]
        matched = unit_terms[i] & asked_terms
        lexical = sum(math.log(1 + len(units) / frequency[t]) for t in matched) / most
        rank_prior = 0.2 / (1 + unit.n) if unit.n else 0.4  # the selection and top passages come first
        return 2.0 * float(similarity[i]) + lexical + rank_prior

    scores = [score(i) for i in range(len(units))]
    ranked = sorted(range(len(units)), key=scores.__getitem__, reverse=True)
    # Declined: a question nothing in the passages comes close to (off-topic), or one resting on a word the
    # passages never use (near the book's subject but not in it). A question about a selection is about
    # that passage; a follow-up's words lean on the question before it, so only its closeness is judged.
    if not selection:
        best_unit_vector = unit_vectors[int(np.argmax(similarity))]
        if closest < DECLINE_BELOW or (
            before is None
            and _rests_on_missing_word(
                question,
                question_vector,
                best_unit_vector,
                set().union(*unit_terms),
                terms,
                embeddings,
                unused,
                spellings,
                is_word,
                zipf,
                word_vectors,
                passage_texts,
                common_slips,
            )
        ):
            return _decline(passages)

    # A lead line is never quoted alone ("…on a real robot:" needs its list): it stands for what it introduces.
    follower = {id(units[i - 1]): i for i in range(1, len(units)) if units[i].lead and units[i].lead == units[i - 1].text and units[i].lead.endswith(":")}
    ranked = list(dict.fromkeys(follower.get(id(units[i]), i) for i in ranked))
    shown = _as_shown(selection) if selection else ""
    if selection:
        # The reader has the selection in front of them: quoting it back explains nothing. What the book
        # says around and beyond it does, when it is about the same thing; otherwise the selection is
        # quoted, the passages only adding to it.
        beyond = [
            i for i in ranked
            if units[i].n and similarity[i] >= BEYOND_SELECTION and not _repeats(_as_shown(units[i].text), shown)
        ]
        ranked = beyond or sorted(ranked, key=lambda i: units[i].n != 0)
    best = units[ranked[0]]
    chosen = [ranked[0]]
    for i in ranked[1:3]:
        other = units[i]
        if other.text == best.lead or best.text == other.lead:
            continue  # already quoted as the other's lead line
        if scores[i] >= SECOND_UNIT * scores[ranked[0]] and len(other.text) + len(best.text) < MAX_ANSWER_CHARS:
            chosen.append(i)
            break
    if not selection and not follow_up:
        # A question in two parts ("what does the course need, and what does Isaac ROS add?") is often
        # answered in two places, and the whole question's best units may both answer one part. Each
        # part's own best unit is quoted too, when it is close enough to answer it and not quoted yet.
        for part in _parts(question):
            part_terms = set(terms(part)) & question_terms
            part_similarity = unit_vectors @ np.array(embeddings.embed_query(part))
            most = sum(math.log(1 + len(units) / frequency[t]) for t in part_terms if t in frequency) or 1.0
            answers_part = max(range(len(units)), key=lambda i: score(i, part_similarity, part_terms, most))
            answers_part = follower.get(id(units[answers_part]), answers_part)
            length = sum(len(units[i].text) for i in chosen) + len(units[answers_part].text)
            if answers_part not in chosen and part_similarity[answers_part] >= DECLINE_BELOW and length < MAX_PARTS_ANSWER_CHARS:
                chosen.append(answers_part)
    chosen.sort(key=lambda i: (units[i].n, units[i].position))

    # The retrieve step puts the section a selection came from first, so the selection cites [1].
    cite_selection = 1 if passages else None
    parts = []
    for i in chosen:
        number = units[i].n or cite_selection
        unit = units[i]
        if selection and unit.n and unit.lead and _repeats(_as_shown(unit.lead), shown):
            unit = replace(unit, lead="")  # a lead line the reader selected is not quoted back either
        parts.append(_render(unit, f" [{number}]" if number else "", question_vector, embeddings))
    lead = "About the selected passage: " if selection else ""
    return lead + "\n\n".join(parts)


_PART_BREAK = re.compile(
    r"(?:,|;|\?)\s*(?:and\s+|but\s+)?(?=(?:what|how|which|why|where|when|who|does|do|is|are|can|should)\b)", re.I
)


def _parts(question: str) -> list[str]:
    """The parts of a question that asks two things ("…, and what…"), each of three words or more; none for one."""
    parts = [p.strip(" ,;?") for p in _PART_BREAK.split(question)]
    parts = [p for p in parts if len(p.split()) >= 3]
    return parts if len(parts) >= 2 else []


def _known(word: str, is_word: Callable[[str], bool] | None, zipf: Callable[[str], float] | None) -> bool:
    """Whether `word` is a word of the language: one the model's vocabulary holds whole ("tyre", "lunch"), or
    one English uses as often as OWN_WORD_ZIPF ("sag", which the vocabulary cuts in pieces)."""
    return is_word is not None and is_word(word) or zipf is not None and zipf(word) >= OWN_WORD_ZIPF


def _words_of(texts: list[str]) -> set[str]:
    """The words of `texts`, lowercased."""
    return {word.lower() for text in texts for word in _WORD.findall(text)}


def _slip_of_a_common_word(
    word: str,
    common_slips: Callable[[str], set[str]] | None,
    is_word: Callable[[str], bool] | None,
    zipf: Callable[[str], float] | None,
) -> bool:
    """Whether `word`, not a word of the language itself, is a slip away from one too common for the index to
    keep (`common_slips`: "whqt", "wpen", "ove"): the reader may have meant that word, which the book's
    spellings never offer."""
    if common_slips is None or (is_word is None and zipf is None) or _known(word, is_word, zipf):
        return False
    return bool(common_slips(word))


def _spelt_as_the_book(
    question: str,
    passage_words: set[str],
    terms: Callable[[str], list[str]],
    unused: Callable[[list[str]], set[str]] | None,
    spellings: Callable[[str], list[str]] | None,
    is_word: Callable[[str], bool] | None,
    zipf: Callable[[str], float] | None,
    common_slips: Callable[[str], set[str]] | None = None,
) -> str:
    """`question` with each word that is neither the book's nor the language's ("itegral", "Nebua") spelt
    the way the book spells it, when one of the book's words is a letter away: the one with the letter the
    reader left out (the commonest slip: "plac" is "place" before "plan"), or else, for a word English does
    not know at all (Zipf 0), the only one ("tooic" is "topic"; "fogs", a rare word, is not "logs"). Read as
    typed, a short question whose subject is mistyped is as far from the book as an off-topic one, and its
    passages' units are ranked without its subject. A word stays as typed (and the missing-word test reads
    it so) when no word is such a spelling, or several are, or a word too common for the index to know is
    a slip away too ("ove" may be "over" as well as the book's "move"), or when it holds a digit ("1060").
    One spelling lookup per such word: none in most questions."""
    if unused is None or spellings is None or (is_word is None and zipf is None):
        return question
    typed = {
        match.group(): found
        for match in _WORD.finditer(question)
        if not any(c.isdigit() for c in match.group())
        and (found := {t for t in terms(match.group()) if len(t) >= MIN_TERM_CHARS})
        and not _known(match.group().lower(), is_word, zipf)
    }
    never = unused(sorted(set().union(*typed.values()))) if typed else set()
    meant: dict[str, str] = {}
    for word, found in typed.items():
        if not found <= never:
            continue  # the book's own word ("rclpy", "URDF")
        lower = word.lower()
        if _slip_of_a_common_word(lower, common_slips, is_word, zipf):
            continue  # a word too common for the index to know may be what was meant ("wpen": "when", not "open")
        # A spelling counts by its analyzer terms, so a stem of the book's ("integre" for its "integration")
        # is one: only a word of the language, or one the passages use ("odometry", "URDF"), is put in.
        spelt = [s for s in spellings(lower) if _known(s, is_word, zipf) or s in passage_words]
        dropped = [spelling for spelling in spelt if len(spelling) == len(word) + 1]
        if not dropped and zipf is not None and zipf(lower) > 0:
            continue  # a rare word typed on purpose ("fogs", not the book's "logs"), as far as anyone can tell
        choice = dropped or spelt
        if len(choice) == 1:
            meant[word] = choice[0]
    if not meant:
        return question
    return _WORD.sub(lambda match: meant.get(match.group(), match.group()), question)


def _rests_on_missing_word(
    question: str,
    question_vector: Any,
    best_unit_vector: Any,
    found: set[str],
    terms: Callable[[str], list[str]],
    embeddings: Embeddings,
    unused: Callable[[list[str]], set[str]] | None = None,
    spellings: Callable[[str], list[str]] | None = None,
    is_word: Callable[[str], bool] | None = None,
    zipf: Callable[[str], float] | None = None,
    word_vectors: WordVectors | None = None,
    passage_texts: list[str] | None = None,
    common_slips: Callable[[str], set[str]] | None = None,
) -> bool:
    """Whether the question is about something the book never names: what carries most of its meaning is
    words the passages (`found` holds their terms) never use. Two candidates are weighed: the heaviest
    single word the passages never use, and, when `unused` says which terms the whole book never uses,
    every word of the question the book never uses, taken out together ("surgical" and "surgeon" share
    one meaning, so each alone weighs little). A candidate's weight is how far the question's vector moves
    (1 - cosine) when it is taken out, each time it occurs. The question is declined when a candidate
    weighs at least MISSING_WORD_WEIGHT, outweighs every other word of the question alone, and the best
    unit is no closer to the question with it than without it (words the book says otherwise, "reply" for
    its "response", a "slick" floor for its friction, bring them closer). A word the book never uses that is
    one letter from one it does (`spellings`) is the book's word typed wrong ("simlation"), and the candidate
    is weighed again without it; unless it is a word of its own (`is_word`: "tyre", one letter from the
    book's "type"), which is read as a typo only when the book's spelling brings the question TYPO_GAIN
    closer to the best unit ("a root's pose" is a robot's). One embedding per word, at most, one per group
    of words taken out together, and one per spelling of a real word weighed as a typo.

    A third candidate needs neither test: the rare words (`zipf`, RARE_BELOW) the book never uses that no
    word of the passages comes close to in context (`word_vectors`, UNMATCHED_BELOW), taken out together. A
    learner's own word for what the passages say has a match in them, so closeness to the best unit is not
    asked; and a question can rest on two things ("a ROS 2 node in Rust") of which only one is the book's,
    so outweighing is not asked either. It is made only when the other two let the question through, and
    costs one model run for the question and one per passage only when its rare words weigh enough."""
    spans: dict[str, list[tuple[int, int]]] = {}
    word_terms: dict[str, set[str]] = {}
    for match in _WORD.finditer(question):
        found_terms = {t for t in terms(match.group()) if len(t) >= MIN_TERM_CHARS}
        if found_terms:
            word = match.group().lower()
            spans.setdefault(word, []).append(match.span())
            word_terms.setdefault(word, set()).update(found_terms)
    missing = sorted(word for word, word_found in word_terms.items() if not word_found <= found)
    if not missing:
        return False

    def rewritten(group: tuple[str, ...], spelling: str = " ") -> str:
        """The question with each of the group's words written `spelling` (by default, taken out)."""
        kept, start = [], 0
        for begin, end in sorted(span for word in group for span in spans[word]):
            kept.append(question[start:begin])
            start = end
        return " ".join(spelling.join([*kept, question[start:]]).split())

    def without(groups: list[tuple[str, ...]]) -> np.ndarray:
        """The question's vectors with each group's words taken out."""
        return np.array(embeddings.embed_documents([rewritten(group) for group in groups]))

    singles = without([(word,) for word in missing])
    alone = dict(zip(missing, (1.0 - singles @ question_vector).tolist()))  # each word's weight on its own
    closeness = float(question_vector @ best_unit_vector)

    def holds(group: tuple[str, ...]) -> bool:
        vector = singles[missing.index(group[0])] if len(group) == 1 else without([group])[0]
        weight = 1.0 - float(vector @ question_vector)
        if weight < MISSING_WORD_WEIGHT or float(vector @ best_unit_vector) < closeness:
            return False  # too light, or it helps the best unit match: the book says it in other words
        others = [word for word in spans if word not in group]
        unweighed = [word for word in others if word not in alone]
        if unweighed:
            alone.update(zip(unweighed, (1.0 - without([(word,) for word in unweighed]) @ question_vector).tolist()))
        return all(alone[word] <= weight for word in others)

    candidates = [(max(missing, key=alone.__getitem__),)]
    unnamed: tuple[str, ...] = ()
    never: set[str] = set()
    if unused is not None:
        # A word the passages miss may still be the book's (used on a page not retrieved); one the book
        # never uses anywhere is not what it is about.
        never = unused(sorted(set().union(*(word_terms[word] for word in missing))))
        unnamed = tuple(word for word in missing if word_terms[word] & never)
        if unnamed and unnamed != candidates[0]:
            candidates.append(unnamed)

    passage_words = _words_of(passage_texts or [])

    @functools.cache  # a word of several candidates is looked up once
    def book_spellings(word: str) -> list[str]:
        return spellings(word) if spellings is not None and word in unnamed else []

    def dropped_letter(word: str) -> bool:
        """Whether `word` is a word of the passages, in front of the reader, with a letter left out ("loo" for
        "loop", "sore" for "score"): the commonest slip, and one that often makes another word."""
        return any(len(spelling) == len(word) + 1 for spelling in set(book_spellings(word)) & passage_words)

    def own(word: str) -> bool:
        """Whether `word` is a word of the language (`_known`), not a misspelling: a word the model's vocabulary
        holds whole is; one only English's lists know is, unless it is a word of the passages with a letter
        dropped ("loo" for the "loop" they show)."""
        if is_word is not None and is_word(word):
            return True
        return _known(word, None, zipf) and not dropped_letter(word)

    @functools.cache  # a word of several candidates is weighed as a typo (its spellings embedded) once
    def mistyped(word: str) -> bool:
        """Whether the reader meant one of the book's words, or one too common for the index to know ("whqt"
        for "what"), and typed `word`."""
        if _slip_of_a_common_word(word, common_slips, is_word, zipf):
            return True
        meant = book_spellings(word)
        if not meant or is_word is None and zipf is None:
            return bool(meant)
        if "-" in word:
            # The index knows terms, not the words joined from them: "differential-dive" is the passages'
            # "differential-drive" mistyped, while "micro-ROS" is not the "macro" and "ROS" the book uses
            # apart. A joined word not in the passages is the language's own when each part the book never
            # uses is.
            if set(meant) & passage_words:
                return True
            own_word = all(own(part) for part in word.split("-") if part and set(terms(part)) & never)
        else:
            own_word = own(word)
        if not own_word:
            return True
        corrected = np.array(embeddings.embed_documents([rewritten((word,), spelling) for spelling in meant]))
        return float((corrected @ best_unit_vector).max()) - closeness >= TYPO_GAIN

    def declines(group: tuple[str, ...], test: Callable[[tuple[str, ...]], bool]) -> bool:
        """Whether `group` passes `test`, read without the words the reader only mistyped."""
        if not test(group):
            return False
        typed_wrong = {word for word in group if mistyped(word)}
        kept = tuple(word for word in group if word not in typed_wrong)
        return not typed_wrong or bool(kept) and test(kept)

    if any(declines(group, holds) for group in candidates):
        return True

    # A word English does not know at all (Zipf 0) is as often the reader's typo of an everyday word ("exra")
    # as a name, and neither is told from the other here: only words the language has count. A word one
    # letter short of a word of the passages is the reader's slip (see `dropped_letter`), and is left out
    # before the passages are read.
    rare = tuple(word for word in unnamed if zipf is not None and 0 < zipf(word) < RARE_BELOW)

    def weighs(group: tuple[str, ...]) -> bool:
        return 1.0 - float(without([group])[0] @ question_vector) >= MISSING_WORD_WEIGHT

    # Reading the passages word by word takes a model run per passage, and a word's spellings a few dozen
    # lookups: only for rare words that, taken out together, weigh enough to decline the question.
    if not rare or word_vectors is None or not weighs(rare):
        return False
    rare = tuple(word for word in rare if not dropped_letter(word))
    unmatched = _unmatched(question, rare, spans, terms, word_vectors, passage_texts or []) if rare else ()
    return bool(unmatched) and declines(unmatched, weighs)


def _unmatched(
    question: str,
    words: list[str],
    spans: dict[str, list[tuple[int, int]]],
    terms: Callable[[str], list[str]],
    word_vectors: WordVectors,
    passage_texts: list[str],
) -> tuple[str, ...]:
    """Which of `words` (found at `spans` in the question) no word piece of the passages comes within
    UNMATCHED_BELOW of, read in context. A word the model cuts in parts ("micro-ROS") is unmatched when
    one of its parts with a meaning of its own is."""
    if not passage_texts:
        return tuple(words)
    (found, vectors, _), *read = word_vectors([question, *passage_texts])
    pieces = np.vstack([text_pieces for _, _, text_pieces in read])
    closest = (vectors @ pieces.T).max(axis=1) if len(vectors) else np.array([])
    unmatched = []
    for word in words:
        parts = [
            float(closest[i])
            for i, (start, end) in enumerate(found)
            if any(begin <= start and end <= stop for begin, stop in spans[word])
            and any(len(t) >= MIN_TERM_CHARS for t in terms(question[start:end]))
        ]
        if parts and min(parts) < UNMATCHED_BELOW:
            unmatched.append(word)
    return tuple(unmatched)


def _decline(passages: list[dict[str, Any]]) -> str:
    """The passages do not answer the question: say so, name what the book covers nearby, cite nothing."""
    nearby = list(dict.fromkeys(p.get("heading") or p.get("title") or "" for p in passages if p.get("heading") or p.get("title")))
    text = "The book does not seem to cover this."
    if nearby:
        text += " The closest topics it covers are: " + "; ".join(f"*{h}*" for h in nearby[:3]) + "."
    return text


REMEMBERED_VECTORS = 2048
"""Vectors of the units (and question variants) most recently embedded, kept for the next answers
(1.5 KB each, about 6 MB with their texts): readers ask about the same pages, and the same questions."""


class _RememberedVectors(Embeddings):
    """`embeddings` keeping the document vectors of the last `size` texts it embedded.

    The book's text does not change between answers, so a unit of a passage quoted for one question is
    embedded once for the next question that retrieves it; an answer to a question asked before costs
    no model run at all. Questions go to `embeddings`, which keeps its own.
    """

    def __init__(self, embeddings: Embeddings, size: int) -> None:
        self._embeddings = embeddings
        self._size = size
        # float32 arrays: 1.5 KB a vector, where a list of Python floats takes 12 KB.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        # Answers are written on worker threads, several at once.
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            known = {text: self._vectors[text] for text in texts if text in self._vectors}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(text for text in texts if text not in known))
        if missing:
            vectors = self._embeddings.embed_documents(missing)
            computed = {text: np.asarray(vector, dtype=np.float32) for text, vector in zip(missing, vectors)}
            known.update(computed)
            with self._lock:
                self._vectors.update(computed)
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        return [known[text].tolist() for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embeddings.embed_query(text)


class OfflineChatModel(BaseChatModel):
    """Answers from the passages in its prompt, without a language model."""

    embeddings: Embeddings
    """Sentence embeddings: how close a sentence's meaning is to the question's leads its score."""
    terms: Callable[[str], list[str]]
    """The search index's analyzer (stemmed, stopword-free terms): the words a sentence shares with the question."""
    blocks: Callable[[str], list[Any]]
    """Markdown split into its top-level blocks (each with `.kind` and `.text`): what is quoted whole."""
    unused: Callable[[list[str]], set[str]] | None = None
    """Which of the given analyzer terms the whole book never uses (its index's vocabulary): a question
    resting on those is declined. None (a model not tied to one book's index): only the passages' words
    are known."""
    spellings: Callable[[str], list[str]] | None = None
    """The book's words one letter away from a word it never uses: what a reader misspelling the book's
    word meant, which the question does not rest on."""
    is_word: Callable[[str], bool] | None = None
    """Whether a word is one of the language's own (a reader's "tyre" may mean "tyre", not the book's
    "type"). None: every word one letter from the book's is read as its typo."""
    zipf: Callable[[str], float] | None = None
    """How common a word is in English (Zipf frequency): a rare word the book never uses names what the question
    is about. None: only the other two tests of `_rests_on_missing_word` are made."""
    word_vectors: WordVectors | None = None
    """Texts' words in context (`MiniLMEmbeddings.word_vectors`): whether a word of the question is in the
    passages in other words."""
    common_slips: Callable[[str], set[str]] | None = None
    """The words too common for the index to keep that a word is one letter from ("whqt": "what"). None: a
    word the book's spellings do not explain is read as typed."""
    model_name: str = OFFLINE_MODEL_NAME
    _remembered: _RememberedVectors = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        super().model_post_init(context)
        self._remembered = _RememberedVectors(self.embeddings, REMEMBERED_VECTORS)

    @property
    def _llm_type(self) -> str:
        return "booktutor-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _reply(self, messages: list[BaseMessage]) -> str:
        last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        text = last.text if last is not None else ""
        context = parse_answer_context(text)
        if not context["grounded"]:
            return SMALL_TALK_REPLY
        asked_before = [m.text for m in messages[:-1] if isinstance(m, HumanMessage)]
        answer = extractive_answer(
            context,
            embeddings=self._remembered,
            terms=self.terms,
            blocks=self.blocks,
            history=asked_before,
            unused=self.unused,
            spellings=self.spellings,
            is_word=self.is_word,
            zipf=self.zipf,
            word_vectors=self.word_vectors,
            common_slips=self.common_slips,
        )
        return f"{answer}\n\n{OFFLINE_LABEL}"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        message = AIMessage(self._reply(messages), response_metadata={"model_name": self.model_name})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for token in re.findall(r"\S+\s*|\s+", self._reply(messages)):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="", response_metadata={"model_name": self.model_name, "finish_reason": "stop"}
            )
        )
