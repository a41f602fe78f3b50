/**
 * The API key lives in sessionStorage only: gone when the tab closes, never in a URL, a cookie or
 * localStorage. A private key shown once after creation lives in memory only (`oneTime`).
 */
const KEY = 'tunnelkeeper.apiKey';

export function savedKey(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function saveKey(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(KEY);
}

/**
 * Private keys of tunnels just created, by tunnel id: handed from the add form to the tunnel page
 * in memory, shown once, and dropped when the page is left (never stored, never sent anywhere).
 */
export const oneTime = new Map<string, string>();
