import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Code,
  ConnectError,
  type GatewayClient,
  type StreamPart,
  type TransportKind,
  createGatewayClient,
  joinStream,
  runRequest,
  streamRun,
} from "../src/index.js";
import { type Gateway, startGateway } from "./gateway.js";

let gateway: Gateway;

before(async () => {
  gateway = await startGateway();
});

after(async () => {
  await gateway?.stop();
});

async function collect(parts: AsyncIterable<StreamPart>): Promise<StreamPart[]> {
  const out: StreamPart[] = [];
  for await (const part of parts) out.push(part);
  return out;
}

// Connect and gRPC-Web on the HTTP port over HTTP/1.1 and over HTTP/2 (h2c, prior knowledge).
const transports: [TransportKind, "1.1" | "2"][] = [
  ["grpc", "2"], ["connect", "1.1"], ["grpc-web", "1.1"], ["connect", "2"], ["grpc-web", "2"],
];

for (const [transport, httpVersion] of transports) {
  describe(`over ${transport}, HTTP/${httpVersion}`, () => {
    let client: GatewayClient;
    before(async () => {
      const baseUrl = transport === "grpc" ? gateway.grpcUrl : gateway.httpUrl;
      client = await createGatewayClient({ baseUrl, transport, httpVersion });
    });

    test("streams a run with two modes, with the SSE event names", async () => {
      const parts = await collect(
        streamRun(client, "agent", { input: { topic: "ice cream" }, streamMode: ["values", "updates"] }),
      );
      assert.equal(parts[0]?.event, "metadata");
      const names = new Set(parts.map((p) => p.event));
      assert.ok(names.has("values") && names.has("updates"), [...names].join());
      const values = parts.filter((p) => p.event === "values").at(-1)?.data;
      assert.deepEqual(values, { topic: "ice cream and cats", joke: "This is a joke about ice cream and cats" });
      assert.ok(parts.every((p) => /^\d+-\d+$/.test(p.id)));
    });

    test("names subgraph events by their namespace", async () => {
      const parts = await collect(
        streamRun(client, "subgraphs", { input: { foo: "foo" }, streamMode: "updates", streamSubgraphs: true }),
      );
      assert.ok(parts.some((p) => p.event.startsWith("updates|")), parts.map((p) => p.event).join());
    });

    test("an unknown thread is NOT_FOUND", async () => {
      await assert.rejects(
        client.threads.getThread({ threadId: "00000000-0000-0000-0000-000000000000" }),
        (err: unknown) => err instanceof ConnectError && err.code === Code.NotFound,
      );
    });

    test("an interrupt is resumed with a command, and the thread's state follows", async () => {
      const thread = await client.threads.createThread({});
      const first = await collect(
        streamRun(client, "approval", { threadId: thread.threadId, input: { action: "deploy" }, streamMode: "updates" }),
      );
      assert.ok(first.some((p) => p.event === "updates" && JSON.stringify(p.data).includes("__interrupt__")));
      const resumed = await collect(
        streamRun(client, "approval", { threadId: thread.threadId, command: { resume: true }, streamMode: "values" }),
      );
      assert.ok(resumed.some((p) => p.event === "values"));
      const state = await client.threads.getThreadState({ threadId: thread.threadId });
      assert.equal(state.next.length, 0);
      assert.deepEqual(JSON.parse(state.valuesJson), { action: "deploy", approved: true });
    });

    test("a run is joined from its start by event id", async () => {
      const thread = await client.threads.createThread({});
      const run = await client.runs.createRun(
        runRequest("agent", { threadId: thread.threadId, input: { topic: "tea" }, streamMode: "updates", streamResumable: true }),
      );
      const parts = await collect(joinStream(client, thread.threadId, run.runId, { lastEventId: "0" }));
      assert.deepEqual(
        parts.filter((p) => p.event === "updates").map((p) => Object.keys(p.data as object)[0]),
        ["refine_topic", "generate_joke"],
      );
    });

    test("a repeat with the same requestId gets the run the first call made", async () => {
      const thread = await client.threads.createThread({});
      const request = runRequest("agent", { threadId: thread.threadId, input: { topic: "tea" }, requestId: crypto.randomUUID() });
      const first = await client.runs.createRun(request);
      const again = await client.runs.createRun(request);
      assert.equal(again.runId, first.runId);
      const listed = await client.runs.listRuns({ threadId: thread.threadId });
      assert.deepEqual(listed.runs.map((r) => r.runId), [first.runId]);
    });
  });
}
