"""`tools/personalization.py`: spotting follow-ups and rewriting a turn into a standalone search query."""

from __future__ import annotations

import pytest

from booktutor.tools.personalization import build_rewrite_tool, looks_like_follow_up

HISTORY = [
    "user: What is a ROS 2 topic?",
    "assistant: A topic is a named bus over which nodes exchange messages [1].",
]
PROFILE = {
    "software_background": "Python scripting",
    "hardware_background": "embedded systems",
    "experience_level": "beginner",
    "goals": "build a robot arm",
}


@pytest.mark.parametrize(
    "question",
    [
        "And how is that different from a service?",
        "What about launch files?",
        "How about in Gazebo?",
        "Why?",
        "Can you show me an example of it?",
        "Is it faster than a service?",
        "Compared to ROS 1?",
        "so what do they publish?",
        "What if the subscriber is slower than the publisher?",
    ],
)
def test_follow_ups_are_recognised(question):
    assert looks_like_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is a ROS 2 node?",
        "How do I install ROS 2 Humble on Ubuntu 22.04?",
        "Explain inverse kinematics for a humanoid arm.",
        "What sensors does a humanoid robot use for balance?",
        "Why does ROS 2 use DDS for communication between nodes?",
        # long, self-contained questions are never follow-ups, whatever words they use
        "Can you explain in detail how the navigation stack plans a path when it has a map of the "
        "warehouse and the robot must avoid people walking around it?",
    ],
)
def test_fresh_questions_are_not_follow_ups(question):
    assert not looks_like_follow_up(question)


# -- without a model ---------------------------------------------------------------------------------


async def test_rule_rewrite_prefixes_the_previous_question_to_a_follow_up():
    tool = build_rewrite_tool(None)
    assert tool.name == "rewrite_query"
    rewritten = await tool.ainvoke({"question": "And how is that different from a service?", "history": HISTORY})
    assert rewritten == "What is a ROS 2 topic? And how is that different from a service?"


async def test_rule_rewrite_uses_the_latest_user_question():
    tool = build_rewrite_tool(None)
    history = [
        *HISTORY,
        "user: How do launch files work?",
        "assistant: A launch file starts several nodes at once [2].",
    ]
    rewritten = await tool.ainvoke({"question": "What about its parameters?", "history": history})
    assert rewritten == "How do launch files work? What about its parameters?"


@pytest.mark.parametrize(
    "question",
    ["How do I install ROS 2 Humble on Ubuntu 22.04?", "Why does ROS 2 use DDS for communication between nodes?"],
)
async def test_rule_rewrite_leaves_a_fresh_question_unchanged(question):
    tool = build_rewrite_tool(None)
    assert await tool.ainvoke({"question": question, "history": HISTORY, "profile": PROFILE}) == question


async def test_rule_rewrite_of_a_follow_up_without_history_is_unchanged():
    tool = build_rewrite_tool(None)
    assert await tool.ainvoke({"question": "What about launch files?"}) == "What about launch files?"


async def test_a_selection_is_searched_with_the_question():
    tool = build_rewrite_tool(None)
    selection = "A topic is a named bus. " * 60  # longer than the 1000 characters kept
    rewritten = await tool.ainvoke({"question": "What does this mean?", "selected_text": selection})
    assert rewritten == f"What does this mean?\n{selection[:1000]}"


# -- with the scripted model -------------------------------------------------------------------------


@pytest.fixture
def rewrite_tool(language_model):
    from booktutor.agents import models
    from booktutor.graphs.settings import Settings

    settings = Settings()  # reads the scripted server's address from the environment
    rewriter = models.rewriter(settings.model_endpoint, settings.model_for("rewrite"))
    assert rewriter is not None
    return build_rewrite_tool(rewriter)


async def test_model_rewrite_returns_the_reply_without_quotes(rewrite_tool, language_model):
    language_model.reply('  "difference between ROS 2 topics and services for embedded systems beginners"\n')

    rewritten = await rewrite_tool.ainvoke(
        {"question": "And how is that different from a service?", "history": HISTORY, "profile": PROFILE}
    )

    assert rewritten == "difference between ROS 2 topics and services for embedded systems beginners"
    assert len(language_model.requests) == 1


async def test_model_rewrite_sends_history_and_reader_profile(rewrite_tool, language_model):
    language_model.reply("ROS 2 topic versus service")

    await rewrite_tool.ainvoke(
        {"question": "And how is that different from a service?", "history": HISTORY, "profile": PROFILE}
    )

    request = language_model.requests[0]
    assert request["model"] == "gpt-4o-mini"
    assert request["temperature"] == 0.0
    messages = request["messages"]
    everything = "\n".join(m["content"] for m in messages)
    system = next(m["content"] for m in messages if m["role"] == "system")
    human = messages[-1]["content"]

    # The reader's profile is material for the rewrite, sent with it, never in the system role.
    for detail in ("embedded systems", "beginner", "Python scripting", "build a robot arm"):
        assert detail in human and detail not in system
    assert "user: What is a ROS 2 topic?" in human
    assert "assistant: A topic is a named bus over which nodes exchange messages [1]." in human
    assert "And how is that different from a service?" in human
    assert everything.index("user: What is a ROS 2 topic?") < everything.index("assistant: A topic is")


async def test_model_rewrite_sends_only_the_last_six_turns(rewrite_tool, language_model):
    language_model.reply("query")
    history = [f"user: question number {n}" for n in range(10)]

    await rewrite_tool.ainvoke({"question": "And then?", "history": history})

    human = language_model.requests[0]["messages"][-1]["content"]
    assert "question number 3" not in human
    assert all(f"question number {n}" in human for n in range(4, 10))


async def test_model_rewrite_with_profile_only_still_asks_the_model(rewrite_tool, language_model):
    language_model.reply("ROS 2 nodes explained for embedded engineers")

    rewritten = await rewrite_tool.ainvoke({"question": "What is a ROS 2 node?", "profile": PROFILE})

    assert rewritten == "ROS 2 nodes explained for embedded engineers"
    human = language_model.requests[0]["messages"][-1]["content"]
    assert "(none)" in human  # no conversation yet


async def test_model_rewrite_without_history_or_profile_skips_the_model(rewrite_tool, language_model):
    rewritten = await rewrite_tool.ainvoke({"question": "What is a ROS 2 node?"})
    assert rewritten == "What is a ROS 2 node?"
    assert language_model.requests == []


async def test_model_rewrite_falls_back_to_the_question_on_an_empty_reply(rewrite_tool, language_model):
    language_model.reply('""')
    rewritten = await rewrite_tool.ainvoke({"question": "What about launch files?", "history": HISTORY})
    assert rewritten == "What about launch files?"
