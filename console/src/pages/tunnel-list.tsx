/** Every tunnel with a live status; filters by state, pages with the API's cursor. */
import { useEffect, useState } from 'preact/hooks';
import type { Api, Tunnel } from '../api';
import { Notice, PageHeading, StatusDot } from '../components';
import { ago, codeWords, hostPort } from '../format';
import { usePoll } from '../poll';
import { href } from '../route';

const PAGE_SIZE = 20;
const POLL_MS = 3_000;
const FILTERS = [
  { value: '', label: 'All' },
  { value: 'up', label: 'Up' },
  { value: 'down', label: 'Down' },
  { value: 'pending', label: 'Pending' },
  { value: 'disabled', label: 'Disabled' },
];

export function TunnelList({ api }: { api: Api }) {
  const [state, setState] = useState('');
  // The cursors of the pages before this one: "Previous" pops one.
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const cursor = cursors[cursors.length - 1];
  const page = usePoll(
    (etag) => api.list({ state, cursor, limit: PAGE_SIZE }, etag),
    POLL_MS,
    `${state}|${cursor ?? ''}`,
  );
  const now = useNow();
  const items = page.data?.items;
  return (
    <section>
      <div class="page-head">
        <PageHeading>Tunnels</PageHeading>
        <a class="button primary" href={href.add}>
          Add tunnel
        </a>
      </div>
      <fieldset class="filters">
        <legend>Show</legend>
        {FILTERS.map((f) => (
          <label key={f.value} class={state === f.value ? 'chip selected' : 'chip'}>
            <input
              type="radio"
              name="state"
              value={f.value}
              checked={state === f.value}
              onChange={() => {
                setState(f.value);
                setCursors([undefined]);
              }}
            />
            {f.label}
          </label>
        ))}
      </fieldset>
      {page.error && (
        <Notice kind="error">Could not refresh the list: {page.error.message} (retrying)</Notice>
      )}
      {page.data?.unreadable?.map((u) => (
        <Notice key={u.id} kind="warning">
          Tunnel {u.id}: {u.message}
        </Notice>
      ))}
      {items === undefined ? (
        <p aria-busy="true">Loading…</p>
      ) : items.length === 0 ? (
        <div class="empty card">
          <p>{state ? 'No tunnel in this state.' : 'No tunnels yet.'}</p>
          {!state && (
            <p>
              <a href={href.add}>Add your first tunnel</a>: a reverse tunnel needs only a host that can reach
              your database; a standard one, an SSH bastion.
            </p>
          )}
        </div>
      ) : (
        <ul class="tunnel-list" aria-label="Tunnels" aria-live="polite">
          {items.map((t) => (
            <TunnelRow key={t.id} tunnel={t} now={now} />
          ))}
        </ul>
      )}
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={cursors.length <= 1}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          Previous
        </button>
        <span>Page {cursors.length}</span>
        <button
          type="button"
          disabled={!page.data?.nextCursor}
          onClick={() => setCursors((c) => [...c, page.data?.nextCursor])}
        >
          Next
        </button>
      </nav>
    </section>
  );
}

function TunnelRow({ tunnel: t, now }: { tunnel: Tunnel; now: number }) {
  const error = t.status.error;
  return (
    <li class="tunnel-row" data-tunnel-id={t.id}>
      <a href={href.tunnel(t.id)} class="row-link">
        <span class="row-name">{t.name}</span>
        <StatusDot state={t.status.state} />
      </a>
      <dl class="row-facts">
        <div>
          <dt>Type</dt>
          <dd>{t.type === 'reverse' ? 'Reverse' : 'Standard'}</dd>
        </div>
        <div>
          <dt>Service</dt>
          <dd class="mono">{hostPort(t.service.host, t.service.port)}</dd>
        </div>
        <div>
          <dt>Since</dt>
          <dd>
            <time dateTime={t.status.since} title={t.status.since}>
              {ago(t.status.since, now)}
            </time>
          </dd>
        </div>
      </dl>
      {error && t.status.state === 'down' && (
        <p class="row-error" data-error-code={error.code}>
          {codeWords(error.code)}
        </p>
      )}
    </li>
  );
}

/** The current time, ticking every 15 s so "since" stays true without a refetch. */
export function useNow(): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 15_000);
    return () => clearInterval(timer);
  }, []);
  return now;
}
