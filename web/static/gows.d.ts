// Types of gows.js, the browser and Node client of go-websocket.

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

export interface GowsOptions {
  /** systemId the client connects to (required). */
  systemId: string;
  /** Base URL of the node or load balancer: ws(s):// or http(s)://. Default: the page's origin. */
  url?: string;
  /** Connect token (JWT HS256) when the server requires one. */
  token?: string;
  /** Sec-WebSocket-Protocol values to offer (the server selects one it knows, e.g. "gows.v1"). */
  protocols?: string | string[];
  /** WebSocket implementation; in Node: require("ws"). Default: the global WebSocket. */
  WebSocket?: unknown;
  /** Reconnect after a connection is lost (default true). */
  reconnect?: boolean;
  /** First reconnect delay in ms (default 500); doubled per try, with jitter. */
  initialDelay?: number;
  /** Longest reconnect delay in ms (default 30000). */
  maxDelay?: number;
  /** Give up after this many tries in a row (default: never). */
  maxRetries?: number;
  /** Ack frames that ask for it, after the "message" handlers ran (default true). */
  autoAck?: boolean;
  /** Resume the session with lastSeq when the server runs sessions (default true). */
  resume?: boolean;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

/** A pushed message. */
export interface GowsMessage {
  messageId: string;
  sendUserId: string;
  code: number;
  msg: string;
  /** The data the backend sent, as it sent it. */
  data: unknown;
  /** Sequence number, with sessions on. */
  seq?: number;
  /** The backend waits for an ack of this message. */
  ack: boolean;
}

/** Data of a join (1001) or leave (1002) event. */
export interface MemberEvent {
  clientId: string;
  groupName: string;
  userId: string;
  extend: string;
}

/** Data of a move (1003) event: a member resumed on another node. */
export interface MoveEvent extends MemberEvent {
  previousClientId: string;
}

export interface Welcome {
  clientId: string;
  /** true: the session resumed, the frames missed were replayed. false: re-sync from your backend. */
  resumed: boolean;
  previousClientId: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** true: no reconnect follows (a refusal such as 4004 or 4401, a normal close 1000, close(), or reconnect off). Calling close() in a "close" handler stops the reconnect after any other code. */
  final: boolean;
}

export interface GowsEvents {
  state: ConnectionState;
  welcome: Welcome;
  message: GowsMessage;
  join: MemberEvent;
  leave: MemberEvent;
  move: MoveEvent;
  close: CloseInfo;
  reconnecting: { attempt: number; delay: number };
  error: unknown;
}

export class GowsClient {
  constructor(options: GowsOptions);
  readonly state: ConnectionState;
  readonly clientId: string;
  readonly resumeToken: string;
  readonly lastSeq: number;
  /** Subscribe; returns the function that unsubscribes. */
  on<K extends keyof GowsEvents>(event: K, handler: (arg: GowsEvents[K]) => void): () => void;
  off<K extends keyof GowsEvents>(event: K, handler: (arg: GowsEvents[K]) => void): void;
  connect(): this;
  /** Close and stop reconnecting. */
  close(code?: number, reason?: string): void;
  /** Send an upstream message ({"upstream": value}); false when not connected. */
  send(value: unknown): boolean;
  /** Ack a message that carried ack: true (automatic unless autoAck is false). */
  ack(messageId: string): boolean;
  /** The URL of the next connect (with resume parameters when resuming). */
  wsURL(): string;
  /** The next reconnect delay in ms. */
  delay(): number;
}

export const version: string;
declare const gows: { GowsClient: typeof GowsClient; version: string };
export default gows;
