/**
 * A typed client of the LangGraph gRPC gateway, for Node and browsers.
 *
 * `createGatewayClient` returns one client per service of the gateway's API, over gRPC
 * (HTTP/2, Node only: the gRPC port), Connect or gRPC-Web (HTTP/1.1 or HTTP/2: the HTTP port,
 * which browsers reach). `streamRun` streams a run as `{event, data, id}` parts, with the event
 * names of the HTTP/SSE API ("values", "updates", "messages/partial", "custom",
 * "updates|child:<task id>" from inside subgraphs, ...) and the payload decoded from JSON.
 */
import { create, fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { type CallOptions, type Client, type Interceptor, type Transport, createClient } from "@connectrpc/connect";

import { AssistantsService } from "./gen/langgraph/gateway/v1/assistants_pb.js";
import { CronsService } from "./gen/langgraph/gateway/v1/crons_pb.js";
import {
  type CreateRunRequest,
  CreateRunRequestSchema,
  type RunEvent,
  MessagesEventKind,
  MultitaskStrategy,
  OnDisconnect,
  IfNotExists,
  RunsService,
  StreamMode,
} from "./gen/langgraph/gateway/v1/runs_pb.js";
import { SessionsService } from "./gen/langgraph/gateway/v1/sessions_pb.js";
import { StoreService } from "./gen/langgraph/gateway/v1/store_pb.js";
import { ThreadsService } from "./gen/langgraph/gateway/v1/threads_pb.js";

export * from "./gen/langgraph/gateway/v1/assistants_pb.js";
export * from "./gen/langgraph/gateway/v1/crons_pb.js";
export * from "./gen/langgraph/gateway/v1/runs_pb.js";
export * from "./gen/langgraph/gateway/v1/sessions_pb.js";
export * from "./gen/langgraph/gateway/v1/store_pb.js";
export * from "./gen/langgraph/gateway/v1/threads_pb.js";
export { ConnectError, Code } from "@connectrpc/connect";

export type TransportKind = "grpc" | "connect" | "grpc-web";

export interface GatewayClientOptions {
  /** `http://host:port`: the gRPC port for "grpc", the HTTP port for "connect" and "grpc-web". */
  baseUrl: string;
  /** Default: "connect" in a browser, "grpc" in Node. */
  transport?: TransportKind;
  /** Sent as `x-api-key` (the gateway's `--api-key`). */
  apiKey?: string;
  /** Sent with every call (custom auth's headers, `authorization`, ...). */
  headers?: Record<string, string>;
  /** Binary (protobuf, the default) or JSON messages over Connect and gRPC-Web. */
  useBinaryFormat?: boolean;
  /** "1.1" or "2" for Connect and gRPC-Web in Node; gRPC is always HTTP/2. Default "1.1". */
  httpVersion?: "1.1" | "2";
  /** A transport of your own (interceptors, TLS options, ...); the other options are ignored. */
  customTransport?: Transport;
}

export interface GatewayClient {
  transport: Transport;
  assistants: Client<typeof AssistantsService>;
  threads: Client<typeof ThreadsService>;
  runs: Client<typeof RunsService>;
  store: Client<typeof StoreService>;
  crons: Client<typeof CronsService>;
  /** Bidirectional: over the "grpc" transport only. */
  sessions: Client<typeof SessionsService>;
}

const inBrowser = typeof (globalThis as { document?: unknown }).document !== "undefined";

function headersInterceptor(options: GatewayClientOptions): Interceptor {
  const extra: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.apiKey !== undefined) extra["x-api-key"] = options.apiKey;
  return (next) => async (req) => {
    for (const [key, value] of Object.entries(extra)) req.header.set(key, value);
    return next(req);
  };
}

async function makeTransport(options: GatewayClientOptions): Promise<Transport> {
  if (options.customTransport !== undefined) return options.customTransport;
  const kind = options.transport ?? (inBrowser ? "connect" : "grpc");
  const common = {
    baseUrl: options.baseUrl,
    useBinaryFormat: options.useBinaryFormat ?? true,
    interceptors: [headersInterceptor(options)],
  };
  if (inBrowser) {
    if (kind === "grpc") throw new Error('the "grpc" transport needs HTTP/2 trailers: use "connect" or "grpc-web" in a browser');
    const web = await import("@connectrpc/connect-web");
    return kind === "connect" ? web.createConnectTransport(common) : web.createGrpcWebTransport(common);
  }
  const node = await import("@connectrpc/connect-node");
  if (kind === "grpc") return node.createGrpcTransport(common);
  const httpVersion = options.httpVersion ?? "1.1";
  return kind === "connect"
    ? node.createConnectTransport({ ...common, httpVersion })
    : node.createGrpcWebTransport({ ...common, httpVersion });
}

/** Typed clients of every service of the gateway, over one transport. */
export async function createGatewayClient(options: GatewayClientOptions): Promise<GatewayClient> {
  const transport = await makeTransport(options);
  return {
    transport,
    assistants: createClient(AssistantsService, transport),
    threads: createClient(ThreadsService, transport),
    runs: createClient(RunsService, transport),
    store: createClient(StoreService, transport),
    crons: createClient(CronsService, transport),
    sessions: createClient(SessionsService, transport),
  };
}

/** One event of a run, as the HTTP/SSE API names it. */
export interface StreamPart {
  event: string;
  data: unknown;
  /** The event id, for `joinStream(..., { lastEventId })`. */
  id: string;
}

export type StreamModeName =
  | "values"
  | "updates"
  | "messages"
  | "messages-tuple"
  | "debug"
  | "custom"
  | "events"
  | "tasks"
  | "checkpoints"
  | "tools";

const MODES: Record<StreamModeName, StreamMode> = {
  values: StreamMode.VALUES,
  updates: StreamMode.UPDATES,
  messages: StreamMode.MESSAGES,
  "messages-tuple": StreamMode.MESSAGES_TUPLE,
  debug: StreamMode.DEBUG,
  custom: StreamMode.CUSTOM,
  events: StreamMode.EVENTS,
  tasks: StreamMode.TASKS,
  checkpoints: StreamMode.CHECKPOINTS,
  tools: StreamMode.TOOLS,
};

const MESSAGES_KINDS: Record<number, string> = {
  [MessagesEventKind.TUPLE]: "messages",
  [MessagesEventKind.METADATA]: "messages/metadata",
  [MessagesEventKind.PARTIAL]: "messages/partial",
  [MessagesEventKind.COMPLETE]: "messages/complete",
};

export interface StreamRunOptions {
  /** Empty or absent: a stateless run on a temporary thread. */
  threadId?: string;
  input?: JsonValue;
  /** `{resume}`, `{update}`, `{goto}`: instead of an input. */
  command?: JsonObject;
  streamMode?: StreamModeName | StreamModeName[];
  streamSubgraphs?: boolean;
  streamResumable?: boolean;
  config?: JsonObject;
  context?: JsonObject;
  metadata?: JsonObject;
  interruptBefore?: string[];
  interruptAfter?: string[];
  multitaskStrategy?: "reject" | "interrupt" | "rollback" | "enqueue";
  ifNotExists?: "reject" | "create";
  onDisconnect?: "cancel" | "continue";
  checkpointId?: string;
  /** A UUID of the caller's choosing: a repeat with it gets the run the first call made. */
  requestId?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

const STRATEGIES = {
  reject: MultitaskStrategy.REJECT,
  interrupt: MultitaskStrategy.INTERRUPT,
  rollback: MultitaskStrategy.ROLLBACK,
  enqueue: MultitaskStrategy.ENQUEUE,
} as const;

/** The request of RunStream / WaitRun / CreateRun, from plain values. */
export function runRequest(assistantId: string, options: StreamRunOptions = {}): CreateRunRequest {
  const modes = options.streamMode === undefined ? [] : [options.streamMode].flat();
  return create(CreateRunRequestSchema, {
    assistantId,
    threadId: options.threadId ?? "",
    input: options.input === undefined ? undefined : fromJson(ValueSchema, options.input),
    command: options.command,
    config: options.config,
    context: options.context,
    metadata: options.metadata,
    streamMode: modes.map((mode) => MODES[mode]),
    streamSubgraphs: options.streamSubgraphs ?? false,
    streamResumable: options.streamResumable ?? false,
    interruptBefore: options.interruptBefore ?? [],
    interruptAfter: options.interruptAfter ?? [],
    checkpointId: options.checkpointId ?? "",
    requestId: options.requestId ?? "",
    multitaskStrategy: options.multitaskStrategy === undefined ? MultitaskStrategy.UNSPECIFIED : STRATEGIES[options.multitaskStrategy],
    ifNotExists: options.ifNotExists === "create" ? IfNotExists.CREATE : options.ifNotExists === "reject" ? IfNotExists.REJECT : IfNotExists.UNSPECIFIED,
    onDisconnect: options.onDisconnect === "cancel" ? OnDisconnect.CANCEL : options.onDisconnect === "continue" ? OnDisconnect.CONTINUE : OnDisconnect.UNSPECIFIED,
  });
}

/** A RunEvent as an SSE part; undefined for `end` (the stream ends there). */
export function toPart(event: RunEvent): StreamPart | undefined {
  const which = event.event;
  const id = event.eventId;
  let name: string;
  let data: unknown;
  switch (which.case) {
    case "metadata":
      return { event: "metadata", data: { run_id: which.value.runId, attempt: which.value.attempt }, id };
    case "error":
      return { event: "error", data: { error: which.value.error, message: which.value.message }, id };
    case "end":
    case undefined:
      return undefined;
    case "messages":
      name = MESSAGES_KINDS[which.value.kind] ?? "messages";
      data = JSON.parse(which.value.json);
      break;
    default:
      name = which.case;
      data = JSON.parse(which.value.json);
  }
  const event_ = event.namespace.length ? `${name}|${event.namespace.join("|")}` : name;
  return { event: event_, data, id };
}

function callOptions(options: { signal?: AbortSignal; timeoutMs?: number }): CallOptions {
  return { signal: options.signal, timeoutMs: options.timeoutMs };
}

/** Streams a run as `{event, data, id}` parts; events that were ready together arrive in one
 * message (RunStreamBatch), which is what makes a token stream fast. */
export async function* streamRun(
  client: GatewayClient,
  assistantId: string,
  options: StreamRunOptions = {},
): AsyncGenerator<StreamPart> {
  const batches = client.runs.runStreamBatch(runRequest(assistantId, options), callOptions(options));
  for await (const batch of batches) {
    for (const event of batch.events) {
      const part = toPart(event);
      if (part !== undefined) yield part;
    }
  }
}

/** Joins a run's stream: a replay after `lastEventId` ("0" or "-1": from the start), then live. */
export async function* joinStream(
  client: GatewayClient,
  threadId: string,
  runId: string,
  options: { lastEventId?: string; streamMode?: StreamModeName[]; signal?: AbortSignal; timeoutMs?: number } = {},
): AsyncGenerator<StreamPart> {
  const request = {
    threadId,
    runId,
    lastEventId: options.lastEventId ?? "",
    streamMode: (options.streamMode ?? []).map((mode) => MODES[mode]),
  };
  for await (const batch of client.runs.joinRunStreamBatch(request, callOptions(options))) {
    for (const event of batch.events) {
      const part = toPart(event);
      if (part !== undefined) yield part;
    }
  }
}
