// The official JS SDK with langgraph.json's custom auth: each user's client sends its own
// Authorization header; prints what each saw as one JSON object (tests/http/test_sdk_js.py).
import { Client } from "@langchain/langgraph-sdk";

const url = process.argv[2];
const client = (token) =>
  new Client({ apiUrl: url, apiKey: null, defaultHeaders: token ? { Authorization: `Bearer ${token}` } : {} });
const alice = client("alice-token");
const bob = client("bob-token");
const anonymous = client(null);
const out = {};

async function status(call) {
  try {
    await call();
    return 200;
  } catch (error) {
    return error.status ?? error.response?.status ?? String(error);
  }
}

const thread = await alice.threads.create({ metadata: { from: "js" } });
out.owner = thread.metadata.owner;
const parts = [];
for await (const part of alice.runs.stream(thread.thread_id, "whoami", { input: {}, streamMode: "values" })) {
  parts.push(part);
}
out.userId = parts.at(-1).data.user_id;
out.bobGets = await status(() => bob.threads.get(thread.thread_id));
out.bobRuns = await status(() => bob.runs.wait(thread.thread_id, "canary", { input: { note: "intruder" } }));
out.bobSees = (await bob.threads.search({ limit: 1000 })).some((t) => t.thread_id === thread.thread_id);
out.aliceSees = (await alice.threads.search({ metadata: { from: "js" } })).some((t) => t.thread_id === thread.thread_id);
out.anonymous = await status(() => anonymous.threads.search());
console.log(JSON.stringify(out));
