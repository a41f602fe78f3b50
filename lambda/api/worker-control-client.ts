/** `WorkerControl` over HTTP: how the API reaches a gateway worker's internal control endpoint. */
import {
  controlReconnectPath,
  controlTestPath,
  ReconnectAnswerSchema,
  type ReconnectOutcome,
  type WorkerControl,
} from '../../shared/control';
import { type TestResult, TestResultSchema } from '../../shared/schemas';

/** A test covers a bastion connect (its ready timeout) and a probe; under API Gateway's 30 s limit. */
const TEST_TIMEOUT_MS = 25_000;
/** A reconnect only wakes the tunnel's runner: the worker answers at once. */
const RECONNECT_TIMEOUT_MS = 5_000;

export class HttpWorkerControl implements WorkerControl {
  constructor(private readonly token: string) {}

  async testTunnel(controlUrl: string, tunnelId: string): Promise<TestResult> {
    const res = await fetch(`${controlUrl}${controlTestPath(tunnelId)}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(TEST_TIMEOUT_MS),
    });
    if (!res.ok) throw new Error(`gateway worker answered ${res.status}`);
    return TestResultSchema.parse(await res.json());
  }

  async reconnectTunnel(controlUrl: string, tunnelId: string): Promise<ReconnectOutcome | undefined> {
    const res = await fetch(`${controlUrl}${controlReconnectPath(tunnelId)}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(RECONNECT_TIMEOUT_MS),
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status !== 202) throw new Error(`gateway worker answered ${res.status}`);
    return ReconnectAnswerSchema.parse(await res.json()).outcome;
  }
}
