"""A tool-calling agent on a scripted fake chat model: the model streams its text token by token
and its tool calls in pieces, as a provider does, so every stream of the protocol has something
to carry (message deltas, tool calls, tool results, custom data) without an API key."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, TypedDict

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.tools import tool
from langgraph.config import get_stream_writer
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition


class ToolCallingModel(GenericFakeChatModel):
    """GenericFakeChatModel that also streams the tool calls of its scripted replies."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ToolCallingModel:
        return self

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        reply = self._generate(messages, stop=stop, run_manager=run_manager, **kwargs).generations[0].message
        pieces: list[AIMessageChunk] = []
        text = str(reply.content)
        for i, token in enumerate(text.split(" ") if text else ()):
            pieces.append(AIMessageChunk(content=token if i == 0 else " " + token, id=reply.id))
        for index, call in enumerate(getattr(reply, "tool_calls", ())):
            args = json.dumps(call["args"])
            half = len(args) // 2
            first = {"name": call["name"], "args": args[:half], "id": call["id"], "index": index}
            pieces.append(AIMessageChunk(content="", id=reply.id, tool_call_chunks=[first]))
            rest = {"name": None, "args": args[half:], "id": None, "index": index}
            pieces.append(AIMessageChunk(content="", id=reply.id, tool_call_chunks=[rest]))
        # The end of the reply, as LangChain's own stream wrapper marks it.
        pieces.append(AIMessageChunk(content="", id=reply.id, chunk_position="last"))
        for piece in pieces:
            chunk = ChatGenerationChunk(message=piece)
            if run_manager:
                run_manager.on_llm_new_token(str(piece.content), chunk=chunk)
            yield chunk


class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    # The protocol's shape for named custom data: it reaches `custom:weather` subscribers.
    get_stream_writer()({"name": "weather", "payload": {"looking_up": city}})
    return f"It is sunny in {city}."


def _script(city: str) -> list[AIMessage]:
    return [
        AIMessage(
            content="Let me check the weather.",
            tool_calls=[{"name": "get_weather", "args": {"city": city}, "id": "call-1", "type": "tool_call"}],
        ),
        AIMessage(content=f"The weather in {city} is sunny."),
    ]


def agent_node(state: AgentState) -> dict[str, Any]:
    # The latest question, and how far the script has gone answering it.
    messages = state["messages"]
    asked = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    city = str(messages[asked].content).rsplit(" ", 1)[-1].strip("?") or "Paris"
    turn = sum(isinstance(m, ToolMessage) for m in messages[asked:])
    model = ToolCallingModel(messages=iter(_script(city)[turn:])).bind_tools([get_weather])
    return {"messages": [model.invoke(state["messages"])]}


agent = (
    StateGraph(AgentState)
    .add_node("agent", agent_node)
    .add_node("tools", ToolNode([get_weather]))
    .add_edge(START, "agent")
    .add_conditional_edges("agent", tools_condition)
    .add_edge("tools", "agent")
    .compile()
)
