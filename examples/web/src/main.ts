// The page: runs streamed from the gateway's HTTP port over the Connect protocol, with the
// TypeScript client. `?gateway=http://host:port` names the gateway (default: the page's origin).
import { createGatewayClient, streamRun, type GatewayClient } from "../../../clients/typescript/src/index.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const gateway = new URLSearchParams(location.search).get("gateway") ?? location.origin;
$("gateway").textContent = gateway;

function showError(err: unknown): void {
  $("error").textContent = err instanceof Error ? err.message : String(err);
}

const clientReady: Promise<GatewayClient> = createGatewayClient({ baseUrl: gateway, transport: "connect" });

$("run").addEventListener("click", async () => {
  const client = await clientReady;
  const tokens = $("tokens");
  tokens.textContent = "";
  $("values").textContent = "";
  $("status").textContent = "streaming";
  let count = 0;
  try {
    const parts = streamRun(client, "chat", {
      input: { topic: $<HTMLInputElement>("topic").value },
      streamMode: ["messages-tuple", "values"],
    });
    for await (const part of parts) {
      if (part.event === "messages") {
        const [chunk] = part.data as [{ content: string }, unknown];
        tokens.textContent += chunk.content;
        $("token-count").textContent = String(++count);
      } else if (part.event === "values") {
        $("values").textContent = JSON.stringify(part.data);
      }
    }
    $("status").textContent = "done";
  } catch (err) {
    $("status").textContent = "failed";
    showError(err);
  }
});

let threadId = "";

$("ask").addEventListener("click", async () => {
  const client = await clientReady;
  try {
    threadId = (await client.threads.createThread({})).threadId;
    for await (const part of streamRun(client, "approval", {
      threadId,
      input: { action: $<HTMLInputElement>("action").value },
      streamMode: "updates",
    })) {
      const interrupts = (part.data as { __interrupt__?: { value: { question: string } }[] }).__interrupt__;
      if (part.event === "updates" && interrupts?.length) {
        $("question").textContent = interrupts[0]!.value.question;
        $<HTMLButtonElement>("approve").disabled = false;
      }
    }
  } catch (err) {
    showError(err);
  }
});

$("approve").addEventListener("click", async () => {
  const client = await clientReady;
  $<HTMLButtonElement>("approve").disabled = true;
  try {
    for await (const part of streamRun(client, "approval", { threadId, command: { resume: "yes" }, streamMode: "values" })) {
      if (part.event === "values") {
        const { approved } = part.data as { approved?: boolean };
        if (approved !== undefined) $("outcome").textContent = approved ? "approved" : "refused";
      }
    }
  } catch (err) {
    showError(err);
  }
});
