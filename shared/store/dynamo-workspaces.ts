/**
 * Workspaces and their API keys in the table. A key lives in two items written together: by hash
 * (`APIKEY#<hash>`: what authentication reads) and by id in its workspace (`WS#<id>/KEY#<keyId>`:
 * what listing and revoking read), plus the workspace's key count, which keeps its last key.
 * Workspaces and keys from before keys were a resource (no id, no count) are brought up to date
 * the first time they authenticate (`adoptLegacyKey`).
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { ApiKeyRecord } from '../api-keys';
import { ConflictError, NotFoundError, QuotaExceededError } from '../errors';
import { newApiKeyId } from '../ids';
import { cancelledBy, isConditionalFailure } from './dynamo-errors';
import { decodeCursor, encodeCursor } from './page-cursor';
import { GSI2, keys, WORKSPACES_PARTITION } from './table';
import type { Workspace } from './tunnel-store';

/** What authenticating with a key finds. */
export interface FoundApiKey {
  workspaceId: string;
  /** Absent on a key from before keys had ids, until `adoptLegacyKey` gives it one. */
  keyId?: string;
  createdAt?: string;
}

/** A workspace's key as stored for listing. */
export interface StoredApiKey {
  id: string;
  hash: string;
  prefix: string | null;
  createdAt: string;
  lastUsedAt?: string;
}

export interface WorkspacePage {
  items: Workspace[];
  cursor?: string;
}

const ApiKeyItemSchema = z.object({
  workspaceId: z.string(),
  keyId: z.string().optional(),
  createdAt: z.string().optional(),
});
const WorkspaceApiKeyItemSchema = z.object({
  keyId: z.string(),
  hash: z.string(),
  prefix: z.string().nullable(),
  createdAt: z.string(),
  lastUsedAt: z.string().optional(),
});
const WorkspaceItemSchema = z.object({ id: z.string(), name: z.string(), createdAt: z.string() });
const CursorSchema = z.object({
  pk: z.string(),
  sk: z.string(),
  gsi2pk: z.literal(WORKSPACES_PARTITION),
  gsi2sk: z.string(),
});

/** Keys of a workspace are few (a quota bounds them): one page holds them all. */
const KEY_LISTING_LIMIT = 1_000;

export class DynamoWorkspaces {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Creates the workspace with its first key; `ConflictError` if either exists. */
  async createWorkspace(workspace: Workspace, key: ApiKeyRecord): Promise<void> {
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tableName,
                Item: workspaceItem(workspace),
                ConditionExpression: 'attribute_not_exists(pk)',
              },
            },
            ...this.keyPuts(workspace.id, key),
            {
              Put: {
                TableName: this.tableName,
                Item: { ...keys.workspaceApiKeyCount(workspace.id), count: 1 },
              },
            },
          ],
        }),
      );
    } catch (err) {
      if (cancelledBy(err, 0)) throw new ConflictError(`workspace ${workspace.id} exists`, { cause: err });
      if (cancelledBy(err, 1) || cancelledBy(err, 2))
        throw new ConflictError('API key exists', { cause: err });
      throw err;
    }
  }

  /**
   * The workspace with `key` as its first key, unless the workspace exists: then nothing is written
   * (a key revoked since must not come back on a restart). Says whether `key` is one of its keys.
   */
  async ensureWorkspace(
    workspace: Workspace,
    key: ApiKeyRecord,
  ): Promise<{ created: boolean; keyIsTheWorkspaces: boolean }> {
    if (!(await this.getWorkspace(workspace.id))) {
      try {
        await this.createWorkspace(workspace, key);
        return { created: true, keyIsTheWorkspaces: true };
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // Created meanwhile by another process, or the key is taken: told apart below.
      }
    }
    const found = await this.findApiKey(key.hash);
    if (found && found.workspaceId !== workspace.id)
      throw new ConflictError('API key already belongs to another workspace');
    return { created: false, keyIsTheWorkspaces: found !== undefined };
  }

  async getWorkspace(id: string): Promise<Workspace | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.workspace(id), ConsistentRead: true }),
    );
    return Item ? WorkspaceItemSchema.parse(Item) : undefined;
  }

  /** Every workspace, oldest first. */
  async listWorkspaces(page: { limit: number; cursor?: string }): Promise<WorkspacePage> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: GSI2,
        KeyConditionExpression: 'gsi2pk = :p',
        ExpressionAttributeValues: { ':p': WORKSPACES_PARTITION },
        Limit: page.limit,
        ExclusiveStartKey: page.cursor === undefined ? undefined : decodeCursor(page.cursor, CursorSchema),
      }),
    );
    const items = (out.Items ?? []).map((item) => WorkspaceItemSchema.parse(item));
    const last = out.LastEvaluatedKey ? CursorSchema.safeParse(out.LastEvaluatedKey) : undefined;
    return { items, ...(last?.success ? { cursor: encodeCursor(last.data) } : {}) };
  }

  async findApiKey(hash: string): Promise<FoundApiKey | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: keys.apiKey(hash) }),
    );
    return Item ? ApiKeyItemSchema.parse(Item) : undefined;
  }

  async listApiKeys(workspaceId: string): Promise<StoredApiKey[]> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :key)',
        ExpressionAttributeValues: { ':pk': keys.workspace(workspaceId).pk, ':key': 'KEY#' },
        ConsistentRead: true,
        Limit: KEY_LISTING_LIMIT,
      }),
    );
    return (out.Items ?? [])
      .map((item) => WorkspaceApiKeyItemSchema.parse(item))
      .map(({ keyId, ...rest }) => ({ id: keyId, ...rest }))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /**
   * Adds a key to an existing workspace: `NotFoundError` if there is none, `QuotaExceededError`
   * when it has `maxKeys` already.
   */
  async addApiKey(workspaceId: string, key: ApiKeyRecord, maxKeys: number): Promise<void> {
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              ConditionCheck: {
                TableName: this.tableName,
                Key: keys.workspace(workspaceId),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              // A workspace from before keys were counted has exactly one.
              Update: {
                TableName: this.tableName,
                Key: keys.workspaceApiKeyCount(workspaceId),
                UpdateExpression: 'SET #count = if_not_exists(#count, :one) + :one',
                ConditionExpression: 'attribute_not_exists(#count) OR #count < :max',
                ExpressionAttributeNames: { '#count': 'count' },
                ExpressionAttributeValues: { ':one': 1, ':max': maxKeys },
              },
            },
            ...this.keyPuts(workspaceId, key),
          ],
        }),
      );
    } catch (err) {
      if (cancelledBy(err, 0)) throw new NotFoundError('workspace', workspaceId, { cause: err });
      if (cancelledBy(err, 1)) {
        throw new QuotaExceededError(
          'apiKeysPerWorkspace',
          maxKeys,
          `the workspace has reached its limit of ${maxKeys} API keys; revoke one first`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /**
   * Revokes a key of the workspace: `NotFoundError` if it has no such key, `ConflictError` for its
   * last one. Returns the revoked key's hash (to drop it from authentication caches).
   */
  async revokeApiKey(workspaceId: string, keyId: string): Promise<string> {
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.tableName,
        Key: keys.workspaceApiKey(workspaceId, keyId),
        ConsistentRead: true,
      }),
    );
    if (!Item) throw new NotFoundError('API key', keyId);
    const { hash } = WorkspaceApiKeyItemSchema.parse(Item);
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: keys.workspaceApiKeyCount(workspaceId),
                UpdateExpression: 'SET #count = #count - :one',
                ConditionExpression: '#count > :one',
                ExpressionAttributeNames: { '#count': 'count' },
                ExpressionAttributeValues: { ':one': 1 },
              },
            },
            {
              Delete: {
                TableName: this.tableName,
                Key: keys.workspaceApiKey(workspaceId, keyId),
                ConditionExpression: 'attribute_exists(pk)',
              },
            },
            {
              Delete: {
                TableName: this.tableName,
                Key: keys.apiKey(hash),
                ConditionExpression: 'workspaceId = :ws',
                ExpressionAttributeValues: { ':ws': workspaceId },
              },
            },
          ],
        }),
      );
    } catch (err) {
      if (cancelledBy(err, 0)) {
        throw new ConflictError(
          "this is the workspace's last API key: create another one first, then revoke this one",
          { cause: err },
        );
      }
      if (cancelledBy(err, 1) || cancelledBy(err, 2))
        throw new NotFoundError('API key', keyId, { cause: err });
      throw err;
    }
    return hash;
  }

  /** Records that the key authenticated a request at `at` (never resurrects a revoked key). */
  async markApiKeyUsed(workspaceId: string, keyId: string, at: string): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.workspaceApiKey(workspaceId, keyId),
          UpdateExpression: 'SET lastUsedAt = :at',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeValues: { ':at': at },
        }),
      );
    } catch (err) {
      if (!isConditionalFailure(err)) throw err;
    }
  }

  /**
   * Gives a key from before keys had ids an id, its listing item and its workspace a count and a
   * place in the workspace listing; idempotent, and a race with another adopter leaves one id.
   * Undefined when the key is gone.
   */
  async adoptLegacyKey(hash: string, found: FoundApiKey): Promise<string | undefined> {
    if (found.keyId) return found.keyId;
    const keyId = newApiKeyId();
    const createdAt = found.createdAt ?? new Date(0).toISOString();
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: this.tableName,
                Key: keys.apiKey(hash),
                UpdateExpression: 'SET keyId = :id',
                ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(keyId)',
                ExpressionAttributeValues: { ':id': keyId },
              },
            },
            {
              Put: {
                TableName: this.tableName,
                Item: {
                  ...keys.workspaceApiKey(found.workspaceId, keyId),
                  keyId,
                  hash,
                  prefix: null,
                  createdAt,
                },
              },
            },
          ],
        }),
      );
    } catch (err) {
      if (!cancelledBy(err, 0)) throw err;
      // Adopted by another request meanwhile (its id stands), or revoked (undefined).
      return (await this.findApiKey(hash))?.keyId;
    }
    await this.adoptLegacyWorkspace(found.workspaceId);
    return keyId;
  }

  /** A workspace from before listing and counting: listed from now on (its count starts when used). */
  private async adoptLegacyWorkspace(workspaceId: string): Promise<void> {
    const workspace = await this.getWorkspace(workspaceId);
    if (!workspace) return;
    await this.db.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: keys.workspace(workspaceId),
        UpdateExpression: 'SET gsi2pk = if_not_exists(gsi2pk, :p), gsi2sk = if_not_exists(gsi2sk, :s)',
        ExpressionAttributeValues: { ':p': WORKSPACES_PARTITION, ':s': workspaceSortKey(workspace) },
      }),
    );
  }

  private keyPuts(workspaceId: string, key: ApiKeyRecord) {
    return [
      {
        Put: {
          TableName: this.tableName,
          Item: { ...keys.apiKey(key.hash), workspaceId, keyId: key.id, createdAt: key.createdAt },
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...keys.workspaceApiKey(workspaceId, key.id),
            keyId: key.id,
            hash: key.hash,
            prefix: key.prefix,
            createdAt: key.createdAt,
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        },
      },
    ];
  }
}

const workspaceSortKey = (workspace: Workspace) => `${workspace.createdAt}#${workspace.id}`;

function workspaceItem(workspace: Workspace): Record<string, unknown> {
  return {
    ...keys.workspace(workspace.id),
    ...workspace,
    gsi2pk: WORKSPACES_PARTITION,
    gsi2sk: workspaceSortKey(workspace),
  };
}
