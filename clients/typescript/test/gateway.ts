// Starts the real gateway (`python -m gateway serve`) on free ports, as the Python tests do.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
const PYTHON = process.env.GATEWAY_PYTHON ?? join(ROOT, ".venv", "bin", "python");

export interface Gateway {
  grpcUrl: string;
  httpUrl: string;
  stop(): Promise<void>;
}

export async function startGateway(extraArgs: string[] = []): Promise<Gateway> {
  const db = join(mkdtempSync(join(tmpdir(), "gw-ts-")), "gateway.sqlite");
  const child: ChildProcess = spawn(
    PYTHON,
    ["-m", "gateway", "serve", "--config", join(ROOT, "tests/graphs/langgraph.json"), "--db", db,
     "--grpc-port", "0", "--http-port", "0", "--grace", "1", ...extraArgs],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  const stderr: string[] = [];
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk.toString()));
  const ready = await new Promise<{ grpc_port: number; http_port: number }>((done, fail) => {
    const timer = setTimeout(() => fail(new Error(`the gateway did not start in 60 s:\n${stderr.join("")}`)), 60_000);
    child.once("exit", (code) => fail(new Error(`the gateway exited (${code}):\n${stderr.join("")}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event === "ready") {
          clearTimeout(timer);
          done(msg);
        }
      } catch {
        // not the ready line
      }
    });
  });
  return {
    grpcUrl: `http://127.0.0.1:${ready.grpc_port}`,
    httpUrl: `http://127.0.0.1:${ready.http_port}`,
    stop: () =>
      new Promise((done) => {
        child.removeAllListeners("exit");
        child.once("exit", () => done());
        child.kill("SIGKILL");
      }),
  };
}
