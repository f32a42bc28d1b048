// Drives the JS SDK's thread stream client (@langchain/langgraph-sdk, client.threads.stream)
// against the server at argv[2] over the transport argv[3] ("sse" or "websocket") and prints
// what it saw as one JSON object; tests/protocol/test_sdk_js.py asserts on it.
import { Client } from "@langchain/langgraph-sdk";

const [url, transport] = process.argv.slice(2);
const client = new Client({ apiUrl: url, apiKey: null });
const out = {};

function withTimeout(promise, what, ms = 20000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A tool-calling agent: its messages, tool calls and final state.
{
  const thread = client.threads.stream({ assistantId: "tool_agent", transport });
  const texts = (async () => {
    const handles = [];
    for await (const message of thread.messages) handles.push(message);
    return Promise.all(handles.map((m) => m.text));
  })();
  const tools = (async () => {
    // SDK 1.15 yields a call twice, when it starts and when it finishes: one per id.
    const calls = new Map();
    for await (const call of thread.toolCalls) if (!calls.has(call.callId)) calls.set(call.callId, call);
    return Promise.all([...calls.values()].map(async (c) => ({ name: c.name, input: c.input, output: await c.output })));
  })();
  await thread.run.start({ input: { messages: [{ role: "user", content: "weather in Lisbon" }] } });
  const state = await withTimeout(thread.output, "agent output");
  out.agent = {
    texts: await withTimeout(texts, "agent messages"),
    tools: await withTimeout(tools, "agent tool calls"),
    output: state.messages.map((m) => m.content),
  };
  await thread.close();
}

// An interrupt, answered with input.respond.
{
  const thread = client.threads.stream({ assistantId: "approval", transport });
  await thread.run.start({ input: { action: "deploy" } });
  const deadline = Date.now() + 20000;
  while (thread.interrupts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const interrupt = thread.interrupts[0];
  out.interrupt = { payload: interrupt?.payload, namespace: interrupt?.namespace };
  await thread.input.respond({ interrupt_id: interrupt.interruptId, namespace: interrupt.namespace, response: "yes" });
  const deadline2 = Date.now() + 20000;
  let state = null;
  while (Date.now() < deadline2) {
    state = await client.threads.getState(thread.threadId);
    if (state.values.approved !== undefined && state.next.length === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  out.approval = state.values;
  await thread.close();
}

// A graph with a subgraph: discovered as a subgraph handle.
{
  const thread = client.threads.stream({ assistantId: "subgraphs", transport });
  const found = (async () => {
    const seen = [];
    for await (const sub of thread.subgraphs) seen.push({ name: sub.name ?? sub.graphName ?? null, namespace: sub.namespace });
    return seen;
  })();
  await thread.run.start({ input: { foo: "foo" } });
  out.subgraphsOutput = await withTimeout(thread.output, "subgraphs output");
  out.subgraphs = await withTimeout(found, "subgraphs");
  await thread.close();
}

console.log(JSON.stringify(out));
process.exit(0);
