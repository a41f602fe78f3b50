/**
 * State and secrets: the DynamoDB table (declared from the same `tableDefinition` the code creates
 * locally, so keys and indexes cannot drift), the operator token, and the IAM scopes over them and
 * over the secrets the runtimes create themselves. Every grant names the table, its two indexes and
 * the secrets by ARN: no `*` resource, and nothing outside the secret prefix.
 *
 * The gateway host key and the control token are not declared here: the first runtime to start
 * (API or gateway task) generates them with a create-only write (`ensureSecret`), and processes
 * starting together all end up reading the one value that won. Stack deletion leaves them, so a
 * re-created stack presents the same host key customers pinned in `known_hosts`. The alert
 * channel key is made the same way, by the API with the first channel: the retained table's
 * sealed channel credentials open only with it, so it must outlive the stack as the table does.
 */
import { Arn, ArnFormat, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  type Attribute,
  AttributeType,
  BillingMode,
  ProjectionType,
  StreamViewType,
  Table,
  TableEncryption,
} from 'aws-cdk-lib/aws-dynamodb';
import { type IGrantable, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { secretNames } from '../../shared/secrets/secret-names';
import { GSI1, GSI2, GSI3, TTL_ATTRIBUTE, tableDefinition } from '../../shared/store/table';
import type { Settings } from './settings';

/** Data-plane actions the runtimes use: items, transactions and queries; no scans, no control plane. */
export const TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:ConditionCheckItem',
];

/** What a runtime may do with tunnel secrets (`<prefix>/tunnels/<id>`). */
export type TunnelSecretAccess = 'manage' | 'read-write';
export const TUNNEL_SECRET_ACTIONS: Record<TunnelSecretAccess, string[]> = {
  // The API creates, rotates and deletes them (AwsSecretStore.put creates first, then updates,
  // and restores a name still scheduled for deletion).
  manage: [
    'secretsmanager:GetSecretValue',
    'secretsmanager:CreateSecret',
    'secretsmanager:PutSecretValue',
    'secretsmanager:RestoreSecret',
    'secretsmanager:DeleteSecret',
  ],
  // The gateway reads keys and retires rotated ones; it never deletes nor resurrects a secret.
  'read-write': [
    'secretsmanager:GetSecretValue',
    'secretsmanager:CreateSecret',
    'secretsmanager:PutSecretValue',
  ],
};

/** Shared one-time secrets: read, or created once if missing (never overwritten). */
export const SHARED_SECRET_ACTIONS = ['secretsmanager:GetSecretValue', 'secretsmanager:CreateSecret'];

/** What a runtime may do with the alert channel key: the API creates it once, the sweeper reads it. */
export type ChannelKeyAccess = 'create' | 'read';
export const CHANNEL_KEY_ACTIONS: Record<ChannelKeyAccess, string[]> = {
  create: SHARED_SECRET_ACTIONS,
  read: ['secretsmanager:GetSecretValue'],
};

export interface DataProps {
  settings: Settings;
}

export class Data extends Construct {
  readonly table: Table;
  readonly adminToken: Secret;
  /** Names of the secrets the runtimes create once and share. */
  readonly sharedSecretNames: string[];
  private readonly prefix: string;

  constructor(scope: Construct, id: string, props: DataProps) {
    super(scope, id);
    this.prefix = props.settings.secretPrefix;
    this.sharedSecretNames = [secretNames.hostKey, secretNames.controlToken].map(
      (name) => `${this.prefix}/${name}`,
    );

    const definition = tableDefinition('unused');
    const key = (name: string): Attribute => ({ name, type: AttributeType.STRING });
    const keyName = (schema: typeof definition.KeySchema, type: 'HASH' | 'RANGE') => {
      const name = schema?.find((k) => k.KeyType === type)?.AttributeName;
      if (!name) throw new Error(`tableDefinition lacks a ${type} key`);
      return name;
    };
    this.table = new Table(this, 'Table', {
      partitionKey: key(keyName(definition.KeySchema, 'HASH')),
      sortKey: key(keyName(definition.KeySchema, 'RANGE')),
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      deletionProtection: true,
      encryption: TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
      // The sweeper's trigger: which tunnels' STATE or META items were written (keys only).
      stream:
        definition.StreamSpecification?.StreamViewType === 'KEYS_ONLY' ? StreamViewType.KEYS_ONLY : undefined,
    });
    const projections = { ALL: ProjectionType.ALL, KEYS_ONLY: ProjectionType.KEYS_ONLY };
    for (const index of definition.GlobalSecondaryIndexes ?? []) {
      const projection = index.Projection?.ProjectionType;
      if (!index.IndexName || (projection !== 'ALL' && projection !== 'KEYS_ONLY')) {
        throw new Error(
          `index ${index.IndexName}: only named indexes projecting ALL or KEYS_ONLY are declared here`,
        );
      }
      this.table.addGlobalSecondaryIndex({
        indexName: index.IndexName,
        partitionKey: key(keyName(index.KeySchema, 'HASH')),
        sortKey: key(keyName(index.KeySchema, 'RANGE')),
        projectionType: projections[projection],
      });
    }

    // Read by the API: without it admin routes refuse everyone.
    this.adminToken = new Secret(this, 'AdminToken', {
      secretName: `${this.prefix}/${secretNames.adminToken}`,
      description: 'Tunnelkeeper operator token for /v1/admin/* (Authorization: Bearer <token>)',
      generateSecretString: { passwordLength: 48, excludePunctuation: true, includeSpace: false },
    });
  }

  /**
   * The ARN of one named secret: Secrets Manager appends `-` and six random characters to every
   * secret's name, which `-??????` matches and nothing longer does.
   */
  secretArn(name: string): string {
    return Arn.format(
      {
        service: 'secretsmanager',
        resource: 'secret',
        resourceName: `${name}-??????`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      },
      Stack.of(this),
    );
  }

  /** Every secret under `<prefix>/tunnels/`: their names are tunnel ids, created at run time. */
  get tunnelSecretsArn(): string {
    return Arn.format(
      {
        service: 'secretsmanager',
        resource: 'secret',
        resourceName: `${this.prefix}/tunnels/*`,
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      },
      Stack.of(this),
    );
  }

  grantTable(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: TABLE_ACTIONS,
        resources: [
          this.table.tableArn,
          `${this.table.tableArn}/index/${GSI1}`,
          `${this.table.tableArn}/index/${GSI2}`,
          `${this.table.tableArn}/index/${GSI3}`,
        ],
      }),
    );
  }

  /** The gateway host key and the control token: the API and every gateway task read them. */
  grantSharedSecrets(grantee: IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: SHARED_SECRET_ACTIONS,
        resources: this.sharedSecretNames.map((name) => this.secretArn(name)),
      }),
    );
  }

  /** The one key that seals every alert channel's credentials in the table, by its name alone. */
  grantAlertChannelKey(grantee: IGrantable, access: ChannelKeyAccess): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({
        actions: CHANNEL_KEY_ACTIONS[access],
        resources: [this.secretArn(`${this.prefix}/${secretNames.alertChannelKey}`)],
      }),
    );
  }

  grantTunnelSecrets(grantee: IGrantable, access: TunnelSecretAccess): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new PolicyStatement({ actions: TUNNEL_SECRET_ACTIONS[access], resources: [this.tunnelSecretsArn] }),
    );
  }
}
