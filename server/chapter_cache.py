"""The chapter cache in Postgres: translated or personalized sections, per chapter hash and target."""

from __future__ import annotations

from typing import Sequence

from booktutor.server import crud
from booktutor.tools.chapters import Section


class PostgresSectionCache:
    """`SectionCache` over the `chapter_sections` table for one chapter and one target.

    A section is found under this chapter's hash first, then under its own hash in any chapter (an edited
    chapter keeps the sections it did not change). Each call has its own session: sections finish
    concurrently and one AsyncSession must not be shared between tasks.
    """

    def __init__(self, sessions, *, chapter_hash: str, kind: str, target: str, model: str = "") -> None:
        self.sessions = sessions
        self.chapter_hash = chapter_hash
        self.kind = kind
        self.target = target
        self.model = model

    async def lookup(self, sections: Sequence[Section]) -> dict[int, str]:
        """Section index -> stored text for the sections already done."""
        async with self.sessions() as session:
            rows = await crud.get_chapter_sections(
                session, chapter_hash=self.chapter_hash, kind=self.kind, target=self.target
            )
            stored = {row.section_index: row for row in rows}
            # The hash check guards against a row whose index no longer means the same section.
            found = {
                s.index: stored[s.index].text
                for s in sections
                if s.index in stored and stored[s.index].section_hash == s.hash
            }
            missing = [s for s in sections if s.index not in found]
            if missing:
                reusable = await crud.find_sections_by_hash(
                    session, kind=self.kind, target=self.target, section_hashes={s.hash for s in missing}
                )
                found.update({s.index: reusable[s.hash] for s in missing if s.hash in reusable})
        return found

    async def store(self, section: Section, text: str) -> None:
        """Keep one finished section."""
        async with self.sessions() as session:
            await crud.save_chapter_section(
                session,
                chapter_hash=self.chapter_hash,
                kind=self.kind,
                target=self.target,
                section_index=section.index,
                section_hash=section.hash,
                text=text,
                model=self.model,
            )
