/**
 * Polling that costs nothing while nothing changes: each round sends the last ETag and a 304 keeps
 * what is shown. Rounds never overlap; a failed round is retried with backoff (capped, jittered);
 * a hidden tab polls ten times less often.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type Fresh } from './api';

const MAX_BACKOFF_MS = 30_000;
const HIDDEN_FACTOR = 10;

export interface Polled<T> {
  data: T | undefined;
  error: ApiError | undefined;
  /** Polls now (after an action changed what is shown). */
  refresh(): void;
}

export function usePoll<T>(
  fetchOnce: (etag: string | undefined) => Promise<Fresh<T>>,
  intervalMs: number,
  key: string,
): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const wake = useRef<() => void>(() => {});
  const fetchRef = useRef(fetchOnce);
  fetchRef.current = fetchOnce;

  useEffect(() => {
    let stopped = false;
    let etag: string | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let running = false;
    setData(undefined);
    setError(undefined);
    const round = async () => {
      if (stopped || running) return;
      running = true;
      clearTimeout(timer);
      try {
        const fresh = await fetchRef.current(etag);
        if (stopped) return;
        if (fresh.changed) {
          etag = fresh.etag;
          setData(fresh.body);
        }
        setError(undefined);
        failures = 0;
      } catch (err) {
        if (stopped) return;
        failures++;
        setError(err instanceof ApiError ? err : new ApiError(0, 'network', String(err)));
      } finally {
        running = false;
      }
      if (stopped) return;
      const backoff = failures === 0 ? intervalMs : Math.min(MAX_BACKOFF_MS, intervalMs * 2 ** failures);
      const wait = (document.hidden ? backoff * HIDDEN_FACTOR : backoff) * (0.9 + Math.random() * 0.2);
      timer = setTimeout(round, wait);
    };
    wake.current = () => void round();
    const onVisible = () => {
      if (!document.hidden) void round();
    };
    document.addEventListener('visibilitychange', onVisible);
    void round();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [key, intervalMs]);

  return { data, error, refresh: () => wake.current() };
}
