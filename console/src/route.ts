/**
 * Routes in the URL's fragment (`#/tunnels/<id>`): the server serves one page at `/`, and nothing
 * of the route reaches it or a log.
 */
import { useEffect, useState } from 'preact/hooks';

export type Route = { page: 'list' } | { page: 'add' } | { page: 'tunnel'; id: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '');
  if (path === '/tunnels/new') return { page: 'add' };
  const match = /^\/tunnels\/([A-Za-z0-9_-]{1,64})$/.exec(path);
  if (match?.[1]) return { page: 'tunnel', id: match[1] };
  return { page: 'list' };
}

export const href = {
  list: '#/tunnels',
  add: '#/tunnels/new',
  tunnel: (id: string) => `#/tunnels/${encodeURIComponent(id)}`,
};

export function navigate(to: string): void {
  window.location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
