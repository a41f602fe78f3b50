/**
 * A reverse tunnel's connectors (connectors.ts): list them with their own commands and whether
 * each is live, add one with its own key, remove one. Registered on the tunnel routes' app.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { type ConnectorSlot, connectorSlots, expectedConnectorsOf } from '../../../shared/connectors';
import { ConflictError, NotFoundError } from '../../../shared/errors';
import {
  type Connector,
  ConnectorIdParamSchema,
  ConnectorListSchema,
  ConnectorSchema,
  CreateConnectorSchema,
  TunnelIdParamSchema,
} from '../../../shared/schemas';
import { evaluateStatus, type StatusSettings } from '../../../shared/status';
import type { TunnelStore } from '../../../shared/store/tunnel-store';
import type { TunnelRecord } from '../../../shared/tunnel';
import { connectorCommands, type GatewayInfo } from '../../../shared/tunnel-view';
import type { AuthEnv } from '../auth';
import { readJson } from '../body';
import { API_KEY_SECURITY, AUTHENTICATED, addRoute, errors, json, jsonBody } from '../route-spec';
import type { TunnelService } from '../tunnel-service';

export interface ConnectorRouteDeps {
  service: TunnelService;
  store: TunnelStore;
  gateway: GatewayInfo;
  statusSettings: StatusSettings;
  now: () => Date;
  observingSince: () => number | undefined;
}

const route = { tags: ['Tunnels'] as ['Tunnels'], security: API_KEY_SECURITY };
const STANDARD_HAS_NONE = '`conflict`: a standard tunnel has no connectors';

/** Adds the connector routes under `/{id}/connectors` to the tunnel routes' `app`. */
export function addConnectorRoutes(app: OpenAPIHono<AuthEnv>, deps: ConnectorRouteDeps): void {
  const { service } = deps;

  const reverseTunnel = async (c: Context<AuthEnv>): Promise<TunnelRecord> => {
    const record = await service.get(c.get('workspaceId'), c.req.param('id') ?? '');
    if (record.type !== 'reverse') {
      throw new ConflictError(
        `tunnel ${record.id} is a standard tunnel: only reverse tunnels have connectors`,
      );
    }
    return record;
  };

  /** Which connectors carry the tunnel now: the status machine's judgement over the same items. */
  const liveIds = async (record: TunnelRecord): Promise<Set<string>> => {
    const sources = (await deps.store.getStatusSources([record.id])).get(record.id) ?? {};
    const observingSince = deps.observingSince();
    const { connectors } = evaluateStatus({
      tunnel: { ...record, expectedConnectors: Math.max(2, expectedConnectorsOf(record)) },
      ...(sources.state ? { state: sources.state } : {}),
      ...(sources.heartbeat ? { heartbeat: sources.heartbeat } : {}),
      ...(sources.connectorStates ? { connectorStates: sources.connectorStates } : {}),
      ...(sources.heartbeats ? { heartbeats: sources.heartbeats } : {}),
      now: deps.now(),
      ...(observingSince === undefined ? {} : { observingSince }),
      settings: deps.statusSettings,
    });
    const missing = new Set(connectors?.missing.map((m) => m.slot.id));
    return new Set(connectorSlots(record).flatMap((s) => (missing.has(s.id) ? [] : [s.id])));
  };

  const view = (record: TunnelRecord, slot: ConnectorSlot, live: Set<string>): Connector => ({
    id: slot.id,
    publicKey: slot.publicKey,
    publicKeyFingerprint: slot.publicKeyFingerprint,
    createdAt: slot.createdAt,
    live: live.has(slot.id),
    commands: connectorCommands(record, deps.gateway, slot.id),
  });

  addRoute(
    app,
    {
      ...route,
      method: 'get',
      path: '/{id}/connectors',
      operationId: 'listTunnelConnectors',
      summary: "List a reverse tunnel's connectors",
      description:
        "Each customer host that carries the tunnel: its key, its own commands, and whether it is live. The tunnel's " +
        'own key is the first connector, `primary`; `expected` is how many should be live at once.',
      request: { params: TunnelIdParamSchema },
      responses: {
        200: json(ConnectorListSchema, 'The connectors'),
        ...errors([404, 409, ...AUTHENTICATED], { 409: STANDARD_HAS_NONE }),
      },
    },
    async (c) => {
      const record = await reverseTunnel(c);
      const live = await liveIds(record);
      return c.json({
        items: connectorSlots(record).map((slot) => view(record, slot, live)),
        expected: expectedConnectorsOf(record),
      });
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'get',
      path: '/{id}/connectors/{connectorId}',
      operationId: 'getTunnelConnector',
      summary: 'Get one connector of a reverse tunnel',
      request: { params: ConnectorIdParamSchema },
      responses: {
        200: json(ConnectorSchema, 'The connector'),
        ...errors([404, 409, ...AUTHENTICATED], { 409: STANDARD_HAS_NONE }),
      },
    },
    async (c) => {
      const record = await reverseTunnel(c);
      const slot = slotNamed(record, c.req.param('connectorId') ?? '');
      return c.json(view(record, slot, await liveIds(record)));
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'post',
      path: '/{id}/connectors',
      operationId: 'createTunnelConnector',
      summary: 'Add a connector to a reverse tunnel',
      description:
        'One more customer host with a key of its own (the publicKey sent, or one generated and returned here ' +
        'once as privateKey). A login with its key takes over its own slot only, so hosts never fight. To ' +
        'rotate a key without a gap: add a connector, start it, then remove the old one.',
      request: { params: TunnelIdParamSchema, ...jsonBody(CreateConnectorSchema, false) },
      responses: {
        201: json(ConnectorSchema, 'Created'),
        ...errors([400, 404, 409, 422, ...AUTHENTICATED], {
          409:
            '`conflict`: a standard tunnel, or a key another connector of the tunnel holds; `quota_exceeded`: the ' +
            'tunnel holds the most connectors it may (4)',
        }),
      },
    },
    async (c) => {
      const body = await readJson(c, CreateConnectorSchema, { optional: true });
      const record = await reverseTunnel(c);
      const added = await service.addConnector(c.get('workspaceId'), record.id, body);
      const slot = slotNamed(added.record, added.connector.id);
      const connector = view(added.record, slot, new Set());
      return c.json(
        added.privateKey === undefined ? connector : { ...connector, privateKey: added.privateKey },
        201,
      );
    },
  );

  addRoute(
    app,
    {
      ...route,
      method: 'delete',
      path: '/{id}/connectors/{connectorId}',
      operationId: 'deleteTunnelConnector',
      summary: 'Remove a connector from a reverse tunnel',
      description:
        "Its key stops working and its session closes. The tunnel's own key (`primary`) may be removed while " +
        'another connector remains (`publicKey` then shows the next one); the last connector cannot be.',
      request: { params: ConnectorIdParamSchema },
      responses: {
        204: { description: 'Removed' },
        ...errors([404, 409, ...AUTHENTICATED], {
          409: `${STANDARD_HAS_NONE}, or this is its last connector (delete the tunnel instead)`,
        }),
      },
    },
    async (c) => {
      const record = await reverseTunnel(c);
      await service.removeConnector(c.get('workspaceId'), record.id, c.req.param('connectorId') ?? '');
      return c.body(null, 204);
    },
  );
}

function slotNamed(record: TunnelRecord, connectorId: string): ConnectorSlot {
  const slot = connectorSlots(record).find((s) => s.id === connectorId);
  if (!slot) throw new NotFoundError('connector', connectorId.slice(0, 40));
  return slot;
}
