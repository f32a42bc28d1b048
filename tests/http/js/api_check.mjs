// Drives the JS SDK's calls beyond streaming (assistants and versions, thread copies and pruning,
// run batches, deletes and bulk cancels, crons) against the server at argv[2] and prints what
// each call answered as a JSON list of [step, value]; tests/http/test_api_reference.py compares
// the reference's list with ours.
import { randomUUID } from "node:crypto";
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.argv[2], apiKey: null });
const tag = randomUUID();
const notes = [];
const note = (step, value) => notes.push([step, value ?? null]);
const status = async (call) => {
  try {
    await call();
    return 200;
  } catch (error) {
    return error.status ?? String(error);
  }
};
const pick = (value, keys) => Object.fromEntries(keys.map((k) => [k, value[k] ?? null]));

// Assistants, in versions; runs take the latest version's context.
const bot = await client.assistants.create({
  graphId: "contextual",
  context: { greeting: "bonjour" },
  metadata: { tag },
  name: "JS Bot",
});
const id = bot.assistant_id;
note("create", bot);
note("create again", await status(() => client.assistants.create({ graphId: "agent", assistantId: id })));
note("update", await client.assistants.update(id, { metadata: { v: 2 }, name: "JS Bot 2" }));
note("versions", await client.assistants.getVersions(id));
note("set latest", await client.assistants.setLatest(id, 1));
const thread = await client.threads.create();
note("run with version 1", await client.runs.wait(thread.thread_id, id, { input: {} }));
note("update context", await client.assistants.update(id, { context: { greeting: "hola" } }));
note("run with version 3", await client.runs.wait(thread.thread_id, id, { input: {} }));
note("search", await client.assistants.search({ metadata: { tag }, name: "js bot", select: ["name", "version"] }));
note("count", await client.assistants.count({ metadata: { tag } }));
note("subgraphs", await client.assistants.getSubgraphs("142ee432-e8aa-5ab4-a2a6-c0752e50bcb6", { recurse: true }));

// A thread's copy, pruning.
const joke = await client.threads.create();
await client.runs.wait(joke.thread_id, "agent", { input: { topic: "js" } });
const copy = await client.threads.copy(joke.thread_id);
note("copy", pick(copy, ["metadata", "status"]));
note("state of the copy", await client.threads.getState(copy.thread_id));
note("prune", await client.threads.prune([copy.thread_id]));
note("pruned", await status(() => client.threads.get(copy.thread_id)));

// Runs: a batch, a delete, a bulk cancel.
const batch = await client.runs.createBatch([
  { assistantId: "agent", input: { topic: "a" } },
  { assistantId: "agent", input: { topic: "b" } },
]);
note("batch", batch.map((run) => pick(run, ["assistant_id", "multitask_strategy"])));
const [done] = await client.runs.list(joke.thread_id);
note("delete a run", await status(() => client.runs.delete(joke.thread_id, done.run_id)));
note("deleted", await status(() => client.runs.get(joke.thread_id, done.run_id)));
const slow = await client.threads.create();
const running = await client.runs.create(slow.thread_id, "slow", { input: {} });
const queued = await client.runs.create(slow.thread_id, "slow", { input: {}, multitaskStrategy: "enqueue" });
await client.runs.cancelMany({ threadId: slow.thread_id, runIds: [running.run_id, queued.run_id] });
await client.runs.join(slow.thread_id, running.run_id);
await client.runs.join(slow.thread_id, queued.run_id);
note("cancelled", [
  (await client.runs.get(slow.thread_id, running.run_id)).status,
  (await client.runs.get(slow.thread_id, queued.run_id)).status,
]);

// Crons.
const cron = await client.crons.createForThread(thread.thread_id, "agent", {
  schedule: "0 0 1 1 *",
  input: { topic: "cron" },
  metadata: { tag },
});
note("cron on a thread", cron);
const stateless = await client.crons.create(id, {
  schedule: "*/10 * * * *",
  timezone: "Asia/Tokyo",
  onRunCompleted: "keep",
  metadata: { tag },
});
note("stateless cron", stateless);
note("search crons", await client.crons.search({ metadata: { tag }, sortBy: "created_at", sortOrder: "asc" }));
note("count crons", await client.crons.count({ metadata: { tag } }));
note("update a cron", await client.crons.update(stateless.cron_id, { enabled: false, schedule: "0 8 * * 1" }));
await client.crons.delete(cron.cron_id);
note("after a delete", await client.crons.count({ metadata: { tag } }));

note("delete the assistant", await status(() => client.assistants.delete(id, { deleteThreads: true })));
note("its thread", await status(() => client.threads.get(thread.thread_id)));
note("its crons", await client.crons.count({ metadata: { tag } }));

console.log(JSON.stringify(notes));
