"""The offline model: a real LangChain chat model that answers extractively from the given passages.

It reads the tagged context the answer prompt carries (see `agents.prompts`), picks the sentences that
best match the question, cites them, and streams the result word by word. Every answer ends with a
label saying no language model wrote it. It reads with the book's own tools (embeddings, the index's
analyzer, the Markdown reader), which whoever builds it hands in: agents do not import tools.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterator

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

import numpy as np

from booktutor.agents.prompts import parse_answer_context

OFFLINE_MODEL_NAME = "offline-extractive"
OFFLINE_LABEL = (
    "_Offline answer: these sentences are quoted from the book; no language model is configured "
    "(set OPENAI_API_KEY or OPENAI_BASE_URL for written answers)._"
)
NOT_FOUND = "I could not find this in the book."
SMALL_TALK_REPLY = (
    "Hello! I'm the tutor for this book. Ask me about anything in it, or select a passage and ask me to "
    "explain it.\n\n_Offline mode: answers are quoted from the book; no language model is configured._"
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*`\"(\[])")
_MARKUP = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|>\s+)|\*\*|__")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]\s+|\d+[.)]\s+)")


def _logical_lines(prose: str) -> list[str]:
    """Lines with hard-wrapped paragraph and list-item continuations joined back together."""
    lines: list[str] = []
    for raw in prose.splitlines():
        line = raw.strip()
        if not line:
            lines.append("")
            continue
        starts_block = _LIST_ITEM.match(line) or line.startswith(">")
        if lines and lines[-1] and not starts_block:
            lines[-1] = f"{lines[-1]} {line}"
        else:
            lines.append(line)
    return lines


def _sentences(text: str, prose: Callable[[str], str]) -> list[tuple[str, float]]:
    """(sentence, weight) pairs of a passage's prose and list items.

    Code blocks, tables and headings are left out (by `prose`); list items weigh less than full sentences
    because they are often fragments that read badly out of context.
    """
    found = []
    for line in _logical_lines(prose(text)):
        if not line or set(line) <= set("-=*_ |:"):
            continue
        is_item = bool(_LIST_ITEM.match(line))
        line = _MARKUP.sub("", line).strip(" •")
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(sentence.split()) < 5:
                continue
            complete = sentence[-1] in ".!?:" and not is_item
            found.append((sentence, 1.0 if complete else 0.6))
    return found


def extractive_answer(
    context: dict[str, Any],
    *,
    embeddings: Embeddings,
    terms: Callable[[str], list[str]],
    prose: Callable[[str], str],
    max_sentences: int = 3,
) -> str:
    """Pick and cite the sentences of the passages that best answer the question (see `OfflineChatModel`
    for `embeddings`, `terms` and `prose`)."""
    passages = context["passages"]
    selection = context.get("selection")
    # A question about a selection ("Explain this passage.") is about the selection's words too;
    # ranked on the question alone, any sentence containing "explains" would win.
    query = f"{context['question']}\n{selection}" if selection else context["question"]
    question_terms = set(terms(query))
    if not passages and not selection:
        return NOT_FOUND

    # (passage n, position, sentence, weight); n=0 is the selection itself
    candidates: list[tuple[int, int, str, float]] = []
    if selection:
        candidates += [(0, i, s, w) for i, (s, w) in enumerate(_sentences(selection, prose))]
    quoted = {c[2].lower() for c in candidates}
    for passage in passages:
        for i, (sentence, weight) in enumerate(_sentences(passage["text"], prose)):
            # The selection's own section is passage [1]; its sentences are already candidates.
            if sentence.lower() not in quoted:
                quoted.add(sentence.lower())
                candidates.append((passage["n"], i, sentence, weight))
    if not candidates:
        return NOT_FOUND

    # Terms found in fewer sentences say more about the question (an IDF over the candidates).
    sentence_terms = [set(terms(s)) for _, _, s, _ in candidates]
    frequency: dict[str, int] = {}
    for found in sentence_terms:
        for term in found & question_terms:
            frequency[term] = frequency.get(term, 0) + 1

    # Meaning matters more than shared words: "how do nodes exchange messages" should find "nodes
    # publish to topics", so the sentence's embedding similarity leads the score.
    question_vector = np.array(embeddings.embed_query(query))
    similarity = np.array(embeddings.embed_documents([c[2] for c in candidates])) @ question_vector
    max_lexical = sum(math.log(1 + len(candidates) / f) for f in frequency.values()) or 1.0

    def score(i: int) -> float:
        n, _, _, weight = candidates[i]
        matched = sentence_terms[i] & question_terms
        lexical = sum(math.log(1 + len(candidates) / frequency[t]) for t in matched) / max_lexical
        rank_prior = 0.2 / (1 + n) if n else 0.4  # the selection and top passages come first
        return (2.0 * float(similarity[i]) + lexical + rank_prior) * weight

    ranked = sorted(range(len(candidates)), key=score, reverse=True)
    best = score(ranked[0])
    chosen = [i for i in ranked[:max_sentences] if score(i) >= 0.5 * best]
    chosen.sort(key=lambda i: (candidates[i][0] or 0, candidates[i][1]))

    # The retrieve step puts the section a selection came from first, so the selection cites [1].
    cite_selection = 1 if passages else None
    lines = []
    for i in chosen:
        n, _, sentence, _ = candidates[i]
        marker = n or cite_selection
        lines.append(f"{sentence} [{marker}]" if marker else sentence)
    lead = "About the selected passage: " if selection else ""
    return lead + " ".join(lines)


class OfflineChatModel(BaseChatModel):
    """Answers from the passages in its prompt, without a language model."""

    embeddings: Embeddings
    """Sentence embeddings: how close a sentence's meaning is to the question's leads its score."""
    terms: Callable[[str], list[str]]
    """The search index's analyzer (stemmed, stopword-free terms): the words a sentence shares with the question."""
    prose: Callable[[str], str]
    """Markdown with its fenced code, headings and tables blanked out, so only prose is quoted as an answer."""
    model_name: str = OFFLINE_MODEL_NAME

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
        answer = extractive_answer(context, embeddings=self.embeddings, terms=self.terms, prose=self.prose)
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
