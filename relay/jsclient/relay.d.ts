// Type declarations for relay.js, the relay's browser SDK.
// As an ES module: import { RelayClient } from '/sdk/relay.mjs'.
// As a classic <script src="/sdk/relay.js">: window.RelayClient, window.DRCClient, window.RelayError.

/** Member info as the relay sends it in JOINED frames and `clients` maps. */
export interface MemberInfo {
  /** The member is an authority of the channel. */
  auth: boolean;
  /** 0 receive only, 1 send to authorities only, 2 send to anyone. */
  mode: 0 | 1 | 2;
  /** Data attached by an authority; false for an authority that joined without a grant token. */
  extra: Record<string, unknown> | false;
}

/** Map of client id (as a string) to member info. */
export type Clients = Record<string, MemberInfo>;

/** Any frame the relay sends: responses, notifications and messages. */
export interface Frame {
  channel: number;
  success: boolean;
  cmd?: string;
  from?: number;
  id?: number;
  [field: string]: unknown;
}

/** A DRC error frame. */
export interface ErrorFrame {
  channel: number;
  success: false;
  error: string;
  errorcode: string;
}

/** The joiner's own JOINED frame, as stored by GetChannels/GetChannel. */
export interface JoinedFrame extends Frame {
  cmd: 'JOINED';
  id: number;
  info: MemberInfo;
  channelname: string;
  protocol: string;
  clients: Clients;
}

/** What join() resolves with. */
export interface JoinResult {
  /** The channel number to use in later requests (changes after a reconnect: see 'rejoined'). */
  channel: number;
  channelname: string;
  protocol: string;
  /** This client's id on the current connection. */
  id: number;
  info: MemberInfo;
  /** Members visible to this client, itself included. */
  clients: Clients;
}

export interface JoinOptions {
  /** A grant token or a static authority token. */
  token?: string;
  /**
   * Called for a token when none is given, and once after a rejoin is
   * refused with access_denied (for example because the relay restarted and
   * forgot the grant token). Typically fetches one from the page's backend.
   */
  getToken?: (channelname: string, protocol: string) => string | Promise<string>;
  /** false: do not become an authority by IP address. */
  ipauth?: boolean;
}

export interface GrantOptions {
  clientmode?: 0 | 1 | 2;
  extra?: Record<string, unknown>;
  /** A static authority token. */
  token?: string;
  /** The token makes its member an authority of the channel. */
  makeauth?: boolean;
}

export interface GrantResult {
  token: string;
  channelname: string;
  protocol: string;
}

export interface ClientOptions {
  /** Connect from the constructor (default true); otherwise call connect(). */
  autoConnect?: boolean;
  /** Reconnect after the connection closes (default true). */
  reconnect?: boolean;
  /** First backoff delay in ms (default 500). */
  minDelay?: number;
  /** Largest backoff delay in ms (default 30000). */
  maxDelay?: number;
  /** Backoff growth per failed attempt (default 2). */
  factor?: number;
  /** After close code 1012 (server restart), reconnect within this many ms (default 250). */
  restartDelay?: number;
  /** Rejoin every channel after a reconnect (default true). */
  rejoin?: boolean;
  /** Requests kept while disconnected; more are rejected with queue_full (default 256). */
  maxQueue?: number;
  /** Reject a request the relay has not answered after this many ms; 0 disables (default 30000). */
  requestTimeout?: number;
  /** Log frames to the console (default false). */
  debug?: boolean;
  /** WebSocket constructor to use (default the global WebSocket). */
  WebSocket?: typeof WebSocket;
}

export interface ConnectEvent {
  /** true when this is a reconnect. */
  reconnect: boolean;
}

export interface DisconnectEvent {
  code: number;
  reason: string;
  /** The client will try again. */
  reconnect: boolean;
  /** Milliseconds until the next attempt, -1 when none. */
  delay: number;
}

export interface RejoinedEvent {
  /** The channel's number on the new connection. */
  channel: number;
  /** The number it had before the disconnect. */
  previous: number;
  channelname: string;
  protocol: string;
  id: number;
  clients: Clients;
}

export interface LostEvent {
  /** The number the channel had before the disconnect. */
  channel: number;
  channelname: string;
  protocol: string;
  errorcode: string;
  error: string;
}

export interface RestoredEvent {
  rejoined: RejoinedEvent[];
  lost: LostEvent[];
}

export interface EventMap {
  connect: ConnectEvent;
  disconnect: DisconnectEvent;
  error: ErrorFrame;
  joined: Frame;
  left: Frame;
  message: Frame;
  unhandled: Frame;
  rejoined: RejoinedEvent;
  lost: LostEvent;
  restored: RestoredEvent;
}

export type ClientState = 'idle' | 'connecting' | 'restoring' | 'ready' | 'waiting' | 'closed';

/** The rejection reason of every promise of the SDK. */
export class RelayError extends Error {
  name: 'RelayError';
  /**
   * The relay's errorcode (e.g. "access_denied", "invalid_to") or the client's own:
   * "queue_full", "disconnected", "closed", "timeout", "channel_lost".
   */
  code: string;
  /** The error frame from the relay, or null for the client's own errors. */
  frame: ErrorFrame | null;
  channel: number;
}

export class RelayClient {
  static readonly VERSION: string;
  /** The close code of a relay restart (1012). */
  static readonly CLOSE_SERVICE_RESTART: 1012;

  /** url: ws://, wss://, http(s):// or a path relative to the page. */
  constructor(url?: string, options?: ClientOptions);

  readonly url: string;
  /** This client's id on the current connection, false when not joined anywhere yet. */
  readonly id: number | false;
  readonly state: ClientState;
  /** The socket is open. */
  readonly connected: boolean;
  debug: boolean;

  connect(): void;
  /** Stop for good; queued and unanswered requests reject with "closed". */
  close(code?: number, reason?: string): void;

  on<K extends keyof EventMap>(event: K, callback: (this: RelayClient, detail: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, callback: (this: RelayClient, detail: EventMap[K]) => void): void;
  addEventListener<K extends keyof EventMap>(event: K, callback: (this: RelayClient, detail: EventMap[K]) => void): void;
  removeEventListener<K extends keyof EventMap>(event: K, callback: (this: RelayClient, detail: EventMap[K]) => void): void;

  /** Join a channel; rejects with RelayError (code "access_denied", ...). */
  join(channelname: string, protocol: string, options?: JoinOptions): Promise<JoinResult>;
  /** Leave a channel; resolves when the relay confirms. */
  leave(channel: number | JoinResult): Promise<void>;
  /**
   * Send to one member (to >= 0). The relay acknowledges nothing: resolves once written (a receive-only
   * member is rejected with access_denied).
   */
  send(channel: number | JoinResult, cmd: string, to: number | string, data?: Record<string, unknown>): Promise<void>;
  /**
   * Send to every member; resolves with the sender's own copy when the relay echoes one (authorities and
   * mode 2), once written for a mode 1 member, and rejects with access_denied for a receive-only one.
   */
  broadcast(channel: number | JoinResult, cmd: string, data?: Record<string, unknown>): Promise<Frame | undefined>;
  /** Mint a grant token (authorities only). */
  grant(channelname: string, protocol: string, options?: GrantOptions): Promise<GrantResult>;
  /** Replace a member's extra (authorities only). */
  setExtra(channel: number | JoinResult, id: number, extra: Record<string, unknown>): Promise<Frame>;

  // The DRC browser API of drc_client.js.
  CreateToken(authtoken: string | null | false, channelname: string, protocol: string, clientmode: 0 | 1 | 2, extra?: Record<string, unknown>): void;
  JoinChannel(channelname: string, protocol: string, authtoken?: string | null | false, allowipauth?: boolean): void;
  GetChannels(): Record<string, JoinedFrame>;
  GetChannel(channel: number): JoinedFrame | undefined;
  GetClientID(): number | false;
  SetExtra(channel: number, id: number, extra: Record<string, unknown>): void;
  SendCommand(channel: number, cmd: string, to: number | string, options?: Record<string, unknown>): void;
  GetRandomAuthClientID(channel: number): string | false;
  SendCommandToAuthClients(channel: number, cmd: string, options?: Record<string, unknown>): void;
  LeaveChannel(channel: number): void;
}

/** The original SDK's constructor name; new DRCClient(url) returns a RelayClient. */
export const DRCClient: {
  new (url: string, options?: ClientOptions): RelayClient;
  prototype: RelayClient;
};

export default RelayClient;

declare global {
  interface Window {
    RelayClient: typeof RelayClient;
    DRCClient: typeof DRCClient;
    RelayError: typeof RelayError;
  }
}
