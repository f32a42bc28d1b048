// Drives the official JS SDK (@langchain/langgraph-sdk) against the server at argv[2] and
// prints what it saw as one JSON object; tests/http/test_sdk_js.py asserts on it.
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.argv[2], apiKey: null });
const out = {};

async function collect(stream) {
  const parts = [];
  for await (const part of stream) parts.push({ event: part.event, data: part.data, id: part.id ?? null });
  return parts;
}

const thread = await client.threads.create({ metadata: { from: "js" } });
out.thread = thread;

let created = null;
out.updates = await collect(
  client.runs.stream(thread.thread_id, "agent", {
    input: { topic: "ice cream" },
    streamMode: ["updates", "values"],
    onRunCreated: (meta) => (created = meta),
  }),
);
out.created = created;

out.messages = await collect(
  client.runs.stream(thread.thread_id, "chat", { input: { topic: "js" }, streamMode: "messages-tuple" }),
);
out.custom = await collect(client.runs.stream(null, "custom", { input: { query: "q" }, streamMode: "custom" }));
out.subgraphs = await collect(
  client.runs.stream(null, "subgraphs", { input: { foo: "x" }, streamMode: "updates", streamSubgraphs: true }),
);

const background = await client.runs.create(thread.thread_id, "slow", {
  input: { n: 20, delay: 0.01 },
  streamMode: ["custom"],
});
out.joined = await collect(client.runs.joinStream(thread.thread_id, background.run_id, { lastEventId: "-1" }));
out.joinedCustomOnly = await collect(
  client.runs.joinStream(thread.thread_id, background.run_id, { lastEventId: "0", streamMode: ["custom"] }),
);

out.wait = await client.runs.wait(thread.thread_id, "agent", { input: { topic: "pie" } });
out.state = await client.threads.getState(thread.thread_id);
out.history = await client.threads.getHistory(thread.thread_id, { limit: 3 });
out.runs = await client.runs.list(thread.thread_id);
out.assistants = await client.assistants.search({ graphId: "agent" });

try {
  await client.runs.create(null, "nope", { input: {} });
  out.badAssistant = null;
} catch (err) {
  out.badAssistant = { status: err.status ?? null, message: String(err.message ?? err) };
}

process.stdout.write(JSON.stringify(out));
