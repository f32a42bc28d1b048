// Drives the JS SDK's store client against the server at argv[2] under the namespace argv[3]
// and prints what it saw as one JSON object; tests/http/test_store_js.py asserts on it.
import { Client } from "@langchain/langgraph-sdk";

const client = new Client({ apiUrl: process.argv[2], apiKey: null });
const root = process.argv[3];
const out = {};

await client.store.putItem([root, "docs"], "a", { text: "cats chase mice", n: 1 });
await client.store.putItem([root, "docs"], "b", { text: "dogs chase cats", n: 2 }, { ttl: 60 });
await client.store.putItem([root, "notes"], "c", { text: "red cars", n: 3 }, { index: false });
out.item = await client.store.getItem([root, "docs"], "a", { refreshTtl: true });
out.missing = await client.store.getItem([root, "docs"], "nope");
out.all = await client.store.searchItems([root]);
out.filtered = await client.store.searchItems([root], { filter: { n: { $gt: 1 } } });
out.page = await client.store.searchItems([root], { limit: 1, offset: 2 });
out.namespaces = await client.store.listNamespaces({ prefix: [root] });
out.cut = await client.store.listNamespaces({ prefix: [root], maxDepth: 1 });
if (process.argv[4] === "semantic") out.semantic = await client.store.searchItems([root], { query: "cats chase mice" });
await client.store.deleteItem([root, "docs"], "a");
out.deleted = await client.store.getItem([root, "docs"], "a");
try {
  await client.store.putItem([], "k", {});
} catch (error) {
  out.emptyNamespace = { status: error.status ?? null };
}
out.remembered = await client.runs.wait(null, "memory", { input: { user: root, remember: "from js" } });

console.log(JSON.stringify(out));
