/**
 * Connectors of a reverse tunnel (high availability): customer hosts that each hold one key and
 * run one command. The tunnel's own key is the first connector (`primary`); further ones are
 * stored on the tunnel. A login with a connector's key takes over that connector's slot only.
 *
 * State: the primary connector keeps writing the STATE item's own fields, exactly as a tunnel with
 * one connector always has; every further connector writes an attribute of the same item
 * (`connector_<id>`), so one read of one item still gives the sweeper and the API everything, and
 * every write bumps the item's one `rev` the sweeper's conditional writes rely on (gateway-items.ts).
 * `representativeState` reduces them to the one state the status machine judges: alerts and
 * history stay those of one tunnel, up while any connector is.
 */
import { randomBytes } from 'node:crypto';
import { lastDownOf, type TunnelStateItem, type WorkerHeartbeat } from './gateway-items';
import { type LivenessSettings, type LivenessView, workerLiveness } from './liveness';
import type { StatusWarning } from './schemas';
import type { ConnectorKey, TunnelRecord } from './tunnel';

/** A reverse tunnel expects between 1 and this many live connectors, and holds at most this many keys. */
export const MAX_CONNECTORS = 4;
/** The id of the connector that is the tunnel's own key. */
export const PRIMARY_CONNECTOR_ID = 'primary';
export const CONNECTOR_ID_PATTERN = /^(primary|cn_[a-z2-7]{12})$/;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
export const newConnectorId = (): string => `cn_${[...randomBytes(12)].map((b) => BASE32[b & 31]).join('')}`;

/** The fields of a tunnel the connectors need (a `TunnelRecord` fits). */
export type ConnectorTunnel = Pick<
  TunnelRecord,
  'id' | 'publicKey' | 'publicKeyFingerprint' | 'createdAt' | 'expectedConnectors' | 'connectors'
> & { isPrimaryConnectorRemoved?: boolean | undefined };

export interface ConnectorSlot extends ConnectorKey {
  isPrimary: boolean;
}

/** Every connector of the tunnel, the primary (unless removed) first, then the others oldest first. */
export function connectorSlots(tunnel: ConnectorTunnel): ConnectorSlot[] {
  const slots: ConnectorSlot[] = [];
  if (!tunnel.isPrimaryConnectorRemoved) {
    slots.push({
      id: PRIMARY_CONNECTOR_ID,
      publicKey: tunnel.publicKey,
      publicKeyFingerprint: tunnel.publicKeyFingerprint,
      createdAt: tunnel.createdAt,
      isPrimary: true,
    });
  }
  for (const c of tunnel.connectors ?? []) slots.push({ ...c, isPrimary: false });
  return slots;
}

export const expectedConnectorsOf = (tunnel: Pick<TunnelRecord, 'expectedConnectors'>): number =>
  tunnel.expectedConnectors ?? 1;

/** Whether the tunnel has connectors beyond its own key, or expects more than one. */
export function hasConnectors(
  tunnel: Pick<TunnelRecord, 'type' | 'expectedConnectors' | 'connectors'>,
): boolean {
  return (
    tunnel.type === 'reverse' && (expectedConnectorsOf(tunnel) > 1 || (tunnel.connectors?.length ?? 0) > 0)
  );
}

export interface ConnectorStatesInput {
  tunnel: ConnectorTunnel;
  /** The STATE item's own fields: the primary connector's state. */
  primary?: TunnelStateItem;
  /** Further connectors' states, by connector id. */
  others?: Readonly<Record<string, TunnelStateItem>>;
  heartbeats?: ReadonlyMap<string, WorkerHeartbeat>;
  /** What the previous evaluation judged (`StatusRecord.source`): the state it followed. */
  previousSource?: { state: 'up' | 'down'; since: string; connId?: string };
  view: LivenessView;
  settings: LivenessSettings;
}

export interface ConnectorStates {
  /** The one state the status machine judges, and the heartbeat of its owner. */
  state?: TunnelStateItem;
  heartbeat?: WorkerHeartbeat;
  live: number;
  expected: number;
  /** Connectors not live now, with what their state says. */
  missing: { slot: ConnectorSlot; state?: TunnelStateItem }[];
}

interface Judged {
  slot: ConnectorSlot;
  state?: TunnelStateItem;
  isLive: boolean;
  /** When it stopped carrying the tunnel (not live), as far as anything says. */
  endedAt?: number;
}

/**
 * The state that stands for the tunnel: while any connector is live, a live one (the one the
 * previous evaluation followed if it still is, else the oldest, marked as continuing the previous
 * one when they overlapped, so a connector lost while another carries no gap); while none is, the
 * one that ended last (the machine then says why: its `down`, or its worker lost).
 */
export function representativeState(input: ConnectorStatesInput): ConnectorStates {
  const { tunnel, heartbeats, previousSource } = input;
  const judged = connectorSlots(input.tunnel).map((slot) => judge(slot, stateOf(slot, input), input));
  const live = judged.filter((j) => j.isLive);
  const out: ConnectorStates = {
    live: live.length,
    expected: expectedConnectorsOf(tunnel),
    missing: judged
      .filter((j) => !j.isLive)
      .map((j) => (j.state ? { slot: j.slot, state: j.state } : { slot: j.slot })),
  };
  const withOwner = (state: TunnelStateItem | undefined): ConnectorStates => {
    if (state) out.state = state;
    const beat = state?.owner ? heartbeats?.get(state.owner) : undefined;
    if (beat) out.heartbeat = beat;
    return out;
  };
  const followed = previousSource?.connId;
  const kept = live.find((j) => followed !== undefined && j.state?.connId === followed);
  if (kept) return withOwner(kept.state);
  const oldest = [...live].sort((a, b) => startOf(a) - startOf(b))[0];
  if (oldest?.state) {
    const state: TunnelStateItem = { ...oldest.state };
    if (previousSource?.state === 'up' && followed !== undefined) {
      if (overlapped(oldest, followed, previousSource, judged)) state.continues = followed;
      else {
        // The down no evaluation saw was the followed connection's: history names when and why.
        const gap = endOf(followed, judged);
        if (gap) state.lastDown = gap;
        else delete state.lastDown;
      }
    }
    return withOwner(state);
  }
  const last = judged.filter((j) => j.state).sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0))[0];
  return withOwner(last?.state);
}

/** The connectors warning: who is missing while the tunnel is up with fewer than expected. */
export function connectorsWarning(states: ConnectorStates, now: Date): StatusWarning | undefined {
  if (states.live >= states.expected || states.live === 0) return undefined;
  const missing = states.missing.map(({ slot, state }) => {
    const since = state
      ? ` (${state.state === 'down' ? `down since ${state.since}` : `last up since ${state.since}`})`
      : ' (never connected)';
    return `${slot.id} (key ${slot.publicKeyFingerprint})${since}`;
  });
  const sinces = states.missing
    .map(({ state }) => (state?.state === 'down' ? Date.parse(state.since) : Number.NaN))
    .filter((t) => !Number.isNaN(t));
  return {
    code: 'connectors_missing',
    message:
      `${states.live} of ${states.expected} expected connectors are live; not connected: ${missing.join(', ')}. ` +
      'The tunnel is up through the others, without redundancy.',
    hint:
      "Start the missing connector's command (GET /v1/tunnels/{id}/connectors lists each one's commands) on its " +
      'host, under autossh or its systemd unit so it comes back by itself; or lower reverse.connectors with PATCH ' +
      'if fewer hosts are intended.',
    since: new Date(sinces.length > 0 ? Math.max(...sinces) : now.getTime()).toISOString(),
  };
}

function stateOf(slot: ConnectorSlot, input: ConnectorStatesInput): TunnelStateItem | undefined {
  return slot.isPrimary ? input.primary : input.others?.[slot.id];
}

function judge(slot: ConnectorSlot, state: TunnelStateItem | undefined, input: ConnectorStatesInput): Judged {
  if (!state) return { slot, isLive: false };
  if (state.state === 'down') return { slot, state, isLive: false, endedAt: Date.parse(state.since) };
  const beat = state.owner ? input.heartbeats?.get(state.owner) : undefined;
  const mine = beat?.workerId === state.owner ? beat : undefined;
  const liveness = workerLiveness(mine, input.view, input.settings);
  if (!liveness.isAlive) {
    return {
      slot,
      state,
      isLive: false,
      endedAt: Date.parse(liveness.since ?? input.view.now.toISOString()),
    };
  }
  const connectedAt = Date.parse(state.connectedAt ?? state.since);
  if (mine && Date.parse(mine.startedAt) > connectedAt) {
    return { slot, state, isLive: false, endedAt: Date.parse(mine.startedAt) };
  }
  return { slot, state, isLive: true };
}

const startOf = (j: Judged): number => Date.parse(j.state?.since ?? '') || 0;

/** How the connection `connId` ended, as its connector's state (or kept newest down) says. */
function endOf(connId: string, judged: Judged[]): TunnelStateItem['lastDown'] {
  for (const j of judged) {
    if (j.state?.connId === connId && j.endedAt !== undefined) {
      if (j.state.state === 'down') return lastDownOf(j.state);
      return { since: new Date(j.endedAt).toISOString(), connId };
    }
    if (j.state?.lastDown?.connId === connId) return j.state.lastDown;
  }
  return undefined;
}

/**
 * Whether `next` (live now, so up continuously since its `since`) was already up when the
 * connection the previous evaluation followed ended: then the tunnel never went down.
 */
function overlapped(next: Judged, followed: string, previous: { since: string }, judged: Judged[]): boolean {
  const start = startOf(next);
  for (const j of judged) {
    if (j.state?.connId === followed && j.endedAt !== undefined) return start <= j.endedAt;
    if (j.state?.lastDown?.connId === followed) return start <= Date.parse(j.state.lastDown.since);
  }
  // Nothing says when it ended: up since before it began covers all of it.
  return start <= Date.parse(previous.since);
}
