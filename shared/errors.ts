/**
 * Named domain errors. Each says what went wrong with which thing; `lambda/api/errors.ts` maps them
 * to the contract's error body. Messages never contain secret material.
 */

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `ssh.port`; empty for the whole body. */
  path: string;
  message: string;
}

export class ValidationError extends Error {
  override name = 'ValidationError';
  constructor(
    readonly issues: FieldIssue[],
    options?: ErrorOptions,
  ) {
    super(issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; '), options);
  }

  static field(path: string, message: string, options?: ErrorOptions): ValidationError {
    return new ValidationError([{ path, message }], options);
  }
}

export class NotFoundError extends Error {
  override name = 'NotFoundError';
  constructor(
    readonly kind: string,
    readonly id: string,
    options?: ErrorOptions,
  ) {
    super(`${kind} ${id} not found`, options);
  }
}

export class ConflictError extends Error {
  override name = 'ConflictError';
}

/** A workspace reached one of its limits (e.g. `MAX_TUNNELS_PER_WORKSPACE`); `limit` names it. */
export class QuotaExceededError extends Error {
  override name = 'QuotaExceededError';
  constructor(
    readonly limit: string,
    readonly max: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The workspace has `max` tunnels already (`MAX_TUNNELS_PER_WORKSPACE`). */
export const tunnelQuotaExceeded = (max: number, options?: ErrorOptions): QuotaExceededError =>
  new QuotaExceededError(
    'tunnelsPerWorkspace',
    max,
    `the workspace has reached its limit of ${max} tunnels; delete one, or ask the operator to raise MAX_TUNNELS_PER_WORKSPACE`,
    options,
  );

/** Every port of `TUNNEL_PORT_RANGE` is taken. */
export class PortsExhaustedError extends ConflictError {
  override name = 'PortsExhaustedError';
  constructor(range: string, options?: ErrorOptions) {
    super(`no free tunnel port left in ${range}`, options);
  }
}

/** A secret store failure. `secretName` is the name (never the value) of the secret. */
export class SecretStoreError extends Error {
  override name = 'SecretStoreError';
  constructor(
    readonly secretName: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class SecretNotFoundError extends SecretStoreError {
  override name = 'SecretNotFoundError';
  constructor(secretName: string, options?: ErrorOptions) {
    super(secretName, `secret ${secretName} not found`, options);
  }
}

export class SecretAccessDeniedError extends SecretStoreError {
  override name = 'SecretAccessDeniedError';
  constructor(secretName: string, options?: ErrorOptions) {
    super(secretName, `access to secret ${secretName} denied`, options);
  }
}

/** The secret store cannot be reached, is failing, or is full: retry later (503, never a 500). */
export class SecretStoreUnavailableError extends SecretStoreError {
  override name = 'SecretStoreUnavailableError';
  constructor(
    secretName: string,
    readonly reason: StorageUnavailableReason,
    options?: ErrorOptions,
  ) {
    super(secretName, `the secret store is ${STORAGE_REASON_TEXT[reason]} (secret ${secretName})`, options);
  }
}

export class SecretThrottledError extends SecretStoreError {
  override name = 'SecretThrottledError';
  constructor(secretName: string, options?: ErrorOptions) {
    super(secretName, `secret store throttled the request for ${secretName}`, options);
  }
}

/** The configuration (environment) is invalid; names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** An alert sink could not deliver an alert; `retryable` says whether a later attempt may succeed. */
export class AlertDeliveryError extends Error {
  override name = 'AlertDeliveryError';
  constructor(
    readonly sink: string,
    readonly alertId: string,
    readonly retryable: boolean,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${sink} could not deliver alert ${alertId}: ${message}`, options);
  }
}

/** Why storage (the table, or the secret store) cannot serve: 503 with a reason, never a 500. */
export type StorageUnavailableReason = 'unreachable' | 'throttled' | 'failing' | 'full';

/** The table cannot be reached, is overloaded, failing or full: retry later (503, never a 500). */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
  constructor(
    readonly reason: StorageUnavailableReason,
    options?: ErrorOptions,
  ) {
    super(`the table is ${STORAGE_REASON_TEXT[reason]}`, options);
  }
}

const STORAGE_REASON_TEXT: Record<StorageUnavailableReason, string> = {
  unreachable: 'unreachable',
  throttled: 'overloaded (throttled)',
  failing: 'failing',
  full: 'full (no space left on its disk)',
};
/**
 * A bounded resource is full (the key crypto pool's queue, a task past its deadline): nothing is
 * wrong with the request, a later attempt will likely succeed. `retryAfterSeconds` says when.
 */
export class OverloadedError extends Error {
  override name = 'OverloadedError';
  constructor(
    readonly resource: string,
    readonly retryAfterSeconds: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${resource}: ${message}`, options);
  }
}

/**
 * An alert channel's sealed credentials do not open: another key, an altered value, another item's
 * value, or a format this version does not know. The message names the channel, never the value.
 */
export class SealedCredentialsError extends Error {
  override name = 'SealedCredentialsError';
  constructor(
    readonly channelId: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`the credentials of alert channel ${channelId} cannot be opened: ${reason}`, options);
  }
}
