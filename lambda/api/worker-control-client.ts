/** `WorkerControl` over HTTP: how the API reaches a gateway worker's internal control endpoint. */
import { controlTestPath, type WorkerControl } from '../../shared/control';
import { type TestResult, TestResultSchema } from '../../shared/schemas';

/** A test covers a bastion connect (its ready timeout) and a probe; under API Gateway's 30 s limit. */
const TEST_TIMEOUT_MS = 25_000;

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
}
