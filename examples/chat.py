"""A node that calls a chat model. The model is LangChain's fake chat model, which streams its
reply token by token the way a real one does, so the example runs with no API key."""

from dataclasses import dataclass

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, StateGraph


@dataclass
class MyState:
    topic: str
    joke: str = ""


def call_model(state: MyState) -> dict:
    """Call the LLM to generate a joke about a topic."""
    model = GenericFakeChatModel(
        messages=iter([AIMessage(content=f"Why did the {state.topic} cross the road? To get to the other side!")])
    )
    # Message events are emitted even though the model is called with invoke, not stream.
    model_response = model.invoke([{"role": "user", "content": f"Generate a joke about {state.topic}"}])
    return {"joke": model_response.content}


graph = StateGraph(MyState).add_node(call_model).add_edge(START, "call_model").compile()
