"""The tutor graph: route → rewrite → retrieve → answer → translate.

`builder` is exported uncompiled so the server compiles it with its Postgres checkpointer;
`graph` is compiled without one for `langgraph dev` / Studio, which bring their own persistence.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph

from booktutor.graphs.context import Context
from booktutor.graphs.nodes import answer, retrieve, rewrite_query, route, route_after_answer, route_turn, translate
from booktutor.graphs.state import InputState, OutputState, State

builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
builder.add_node("route", route)
builder.add_node("rewrite_query", rewrite_query)
builder.add_node("retrieve", retrieve)
builder.add_node("answer", answer)
builder.add_node("translate", translate)

builder.add_edge(START, "route")
builder.add_conditional_edges("route", route_turn)
builder.add_edge("rewrite_query", "retrieve")
builder.add_edge("retrieve", "answer")
builder.add_conditional_edges("answer", route_after_answer)
builder.add_edge("translate", END)

graph = builder.compile(name="booktutor")
