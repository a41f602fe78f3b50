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
