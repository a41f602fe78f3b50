/**
 * A tunnel's page: live status with its error and hint, what to install or run (with copy
 * buttons), Test connection, troubleshooting for the current error, the history, and the actions.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { type Api, ApiError, type ServiceInfo, type TestResult, type Tunnel, type TunnelEvent } from '../api';
import { CodeBlock, Notice, PageHeading, StatusDot, Tabs } from '../components';
import { ago, CHECK_WORDS, codeWords, EXPECTED_CHECKS, hostPort, isStatusErrorCode, ms } from '../format';
import { usePoll } from '../poll';
import { href, navigate } from '../route';
import { oneTime } from '../session';
import { bastionSetup, customerSetup, keyFileName } from '../setup-commands';
import { TroubleshootingPanel } from '../troubleshooting-panel';
import { useNow } from './tunnel-list';

const POLL_MS = 2_000;

export function TunnelPage({ api, id }: { api: Api; id: string }) {
  const polled = usePoll((etag) => api.tunnel(id, etag), POLL_MS, id);
  const [override, setOverride] = useState<Tunnel | undefined>();
  // The one-time private key: taken from memory once, dropped when this page goes.
  const [privateKey, setPrivateKey] = useState(() => oneTime.get(id));
  useEffect(() => {
    oneTime.delete(id);
    return () => setPrivateKey(undefined);
  }, [id]);
  const tunnel = newer(polled.data, override);
  const now = useNow();

  if (!tunnel) {
    if (polled.error?.status === 404) {
      return (
        <section>
          <PageHeading>Tunnel not found</PageHeading>
          <p>
            No tunnel {id} in this workspace (deleted, or another workspace's).{' '}
            <a href={href.list}>All tunnels</a>
          </p>
        </section>
      );
    }
    return (
      <section aria-busy="true">
        <PageHeading>Tunnel</PageHeading>
        {polled.error ? <Notice kind="error">{polled.error.message}</Notice> : <p>Loading…</p>}
      </section>
    );
  }
  const changed = (t: Tunnel) => {
    setOverride(t);
    polled.refresh();
  };
  return (
    <article class="tunnel-page" data-tunnel-id={tunnel.id}>
      <p class="crumbs">
        <a href={href.list}>Tunnels</a> / <span class="mono">{tunnel.id}</span>
      </p>
      <div class="page-head">
        <PageHeading>{tunnel.name}</PageHeading>
        <span class="type-badge">{tunnel.type === 'reverse' ? 'Reverse' : 'Standard'}</span>
      </div>
      {polled.error && <Notice kind="warning">Live status paused: {polled.error.message} (retrying)</Notice>}
      <StatusCard tunnel={tunnel} now={now} />
      {privateKey && (
        <PrivateKeyOnce tunnel={tunnel} privateKey={privateKey} onDone={() => setPrivateKey(undefined)} />
      )}
      {tunnel.type === 'reverse' ? (
        <ReverseSetup tunnel={tunnel} />
      ) : (
        <StandardSetup api={api} tunnel={tunnel} onChanged={changed} />
      )}
      <TestConnection api={api} tunnel={tunnel} onTested={polled.refresh} />
      {tunnel.status.error && isStatusErrorCode(tunnel.status.error.code) && (
        <TroubleshootingPanel code={tunnel.status.error.code} tunnel={tunnel} open />
      )}
      <Events api={api} tunnel={tunnel} now={now} />
      <Actions api={api} tunnel={tunnel} onChanged={changed} onNewPrivateKey={(key) => setPrivateKey(key)} />
    </article>
  );
}

/** The later of what the poll saw and what an action returned (an action's answer may be newer). */
function newer(polled: Tunnel | undefined, acted: Tunnel | undefined): Tunnel | undefined {
  if (!polled || !acted || acted.id !== polled.id) return polled ?? acted;
  return acted.updatedAt > polled.updatedAt ? acted : polled;
}

function StatusCard({ tunnel, now }: { tunnel: Tunnel; now: number }) {
  const { status } = tunnel;
  return (
    <section class={`card status-card state-${status.state}`} aria-labelledby="status-h" data-testid="status">
      <h2 id="status-h" class="visually-hidden">
        Status
      </h2>
      <div class="status-line" aria-live="polite">
        <StatusDot state={status.state} />
        <span class="since">
          since{' '}
          <time dateTime={status.since} title={status.since}>
            {ago(status.since, now)}
          </time>
        </span>
      </div>
      {status.error && (
        <div class="status-error" data-error-code={status.error.code}>
          <p class="error-title">
            <strong>{codeWords(status.error.code)}</strong> <code>{status.error.code}</code>
          </p>
          <p class="error-message">{status.error.message}</p>
          <p class="error-hint">
            <strong>What to do: </strong>
            {status.error.hint}
          </p>
        </div>
      )}
      {status.warnings?.map((w) => (
        <div key={w.code} class="status-warning" data-warning-code={w.code}>
          <p>
            <strong>{w.message}</strong>
          </p>
          <p>{w.hint}</p>
        </div>
      ))}
      {tunnel.connect && status.state === 'up' && (
        <p class="connect">
          The platform reaches your service at{' '}
          <code>{hostPort(tunnel.connect.host, tunnel.connect.port)}</code>.
        </p>
      )}
    </section>
  );
}

function PrivateKeyOnce({
  tunnel,
  privateKey,
  onDone,
}: {
  tunnel: Tunnel;
  privateKey: string;
  onDone: () => void;
}) {
  const [downloaded, setDownloaded] = useState(false);
  const download = () => {
    const url = URL.createObjectURL(
      new Blob([privateKey.endsWith('\n') ? privateKey : `${privateKey}\n`], {
        type: 'application/octet-stream',
      }),
    );
    const a = document.createElement('a');
    a.href = url;
    a.download = keyFileName(tunnel.id);
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    setDownloaded(true);
  };
  return (
    <section class="card one-time" aria-labelledby="key-h">
      <h2 id="key-h">Download the private key now</h2>
      <Notice kind="warning">
        This is the only time it is shown: it is not stored anywhere, and leaving this page forgets it.
        Without it, rotate the key to get a new one.
      </Notice>
      <div class="actions">
        <button type="button" class="primary" onClick={download}>
          Download private key
        </button>
        {downloaded && (
          <button type="button" onClick={onDone}>
            I saved it: hide
          </button>
        )}
      </div>
      <p>Then, on the host that will run the tunnel:</p>
      <CodeBlock
        name="key set-up commands"
        text={customerSetup(tunnel, `~/Downloads/${keyFileName(tunnel.id)}`)}
      />
    </section>
  );
}

function ReverseSetup({ tunnel }: { tunnel: Tunnel }) {
  const r = tunnel.reverse;
  if (!r) return null;
  const tabs = [
    {
      id: 'ssh',
      title: 'ssh',
      body: <CodeBlock name="ssh command" testId="command-ssh" text={r.commands.ssh} />,
      note: 'Runs in the foreground: good for a first try.',
    },
    {
      id: 'autossh',
      title: 'autossh',
      body: <CodeBlock name="autossh command" testId="command-autossh" text={r.commands.autossh} />,
      note: 'Reconnects by itself.',
    },
    {
      id: 'systemd',
      title: 'systemd',
      body: <CodeBlock name="systemd unit" testId="command-systemd" text={r.commands.systemd} />,
      note: '',
    },
    {
      id: 'crontab',
      title: 'crontab',
      body: <CodeBlock name="crontab line" testId="command-crontab" text={r.commands.crontab} />,
      note: '',
    },
    ...(r.commands.plink
      ? [
          {
            id: 'plink',
            title: 'Windows (plink)',
            body: <CodeBlock name="plink command" testId="command-plink" text={r.commands.plink} />,
            note: '',
          },
        ]
      : []),
  ];
  return (
    <section class="card" aria-labelledby="setup-h">
      <h2 id="setup-h">Connect it from your network</h2>
      <ol class="steps">
        <li>
          On a host that reaches <code>{hostPort(tunnel.service.host, tunnel.service.port)}</code>, put the
          private key at <code>~/.ssh/tunnelkeeper_{tunnel.id}</code> (mode 600).
        </li>
        <li>
          Trust our endpoint's host key (the commands check it, never skip it):
          <CodeBlock name="known_hosts line" testId="known-hosts" text={r.knownHostsLine} />
        </li>
        <li>
          Run one of these as that user:
          <Tabs label="How to run the tunnel" tabs={tabs} />
        </li>
      </ol>
    </section>
  );
}

function StandardSetup({
  api,
  tunnel,
  onChanged,
}: {
  api: Api;
  tunnel: Tunnel;
  onChanged: (t: Tunnel) => void;
}) {
  const [info, setInfo] = useState<ServiceInfo | undefined>();
  useEffect(() => {
    api.info().then(setInfo, () => setInfo(undefined));
  }, [api]);
  const ssh = tunnel.ssh;
  const line = tunnel.authorizedKeysLine;
  if (!ssh || !line) return null;
  return (
    <section class="card" aria-labelledby="setup-h">
      <h2 id="setup-h">Set up your bastion</h2>
      <ol class="steps">
        {info && info.egressIps.length > 0 && (
          <li>
            Allow inbound TCP to <code>{hostPort(ssh.host, ssh.port)}</code> from our egress IPs:
            <CodeBlock name="egress IPs" testId="egress-ips" text={info.egressIps.join('\n')} />
          </li>
        )}
        <li>
          Add this line to <code>~{ssh.user}/.ssh/authorized_keys</code> on the bastion. It lets our key open
          a forward to <code>{hostPort(tunnel.service.host, tunnel.service.port)}</code> and nothing else:
          <CodeBlock name="authorized_keys line" testId="authorized-keys-line" text={line} />
        </li>
        <li>
          Or run this as root on the bastion: it creates the user if needed, the <code>.ssh</code> directory
          (700) and <code>authorized_keys</code> (600), owned by the user, with the line in it.
          <CodeBlock
            name="bastion set-up commands"
            testId="bastion-setup"
            text={bastionSetup(ssh.user, line)}
          />
        </li>
      </ol>
      <PinnedHostKey api={api} tunnel={tunnel} onChanged={onChanged} />
    </section>
  );
}

function PinnedHostKey({
  api,
  tunnel,
  onChanged,
}: {
  api: Api;
  tunnel: Tunnel;
  onChanged: (t: Tunnel) => void;
}) {
  const pinned = tunnel.ssh?.hostKeyFingerprint;
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [editing, setEditing] = useState(false);
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      onChanged(await api.patch(tunnel.id, { ssh: { hostKeyFingerprint: value.trim() } }));
      setEditing(false);
      setError(undefined);
    } catch (err) {
      setError(err instanceof ApiError ? (Object.values(fieldDetails(err))[0] ?? err.message) : String(err));
    }
  };
  return (
    <div class="pinned">
      <h3>Bastion host key</h3>
      <p>
        {pinned ? (
          <>
            Pinned: <code data-testid="pinned-host-key">{pinned}</code>. A bastion presenting another key is
            refused.
          </>
        ) : (
          'Not pinned yet: the first host key the bastion presents is pinned.'
        )}{' '}
        {!editing && (
          <button type="button" class="link" onClick={() => setEditing(true)}>
            {pinned ? 'Change (the bastion was rebuilt)' : 'Pin a fingerprint now'}
          </button>
        )}
      </p>
      {editing && (
        <form onSubmit={save} class="inline-form" noValidate>
          <label for="pin">Fingerprint</label>
          <input
            id="pin"
            value={value}
            placeholder="SHA256:…"
            spellcheck={false}
            onInput={(e) => setValue(e.currentTarget.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'pin-error' : undefined}
          />
          <button type="submit">Save</button>
          <button type="button" class="link" onClick={() => setEditing(false)}>
            Cancel
          </button>
          {error && (
            <p class="field-error" id="pin-error" role="alert">
              {error}
            </p>
          )}
        </form>
      )}
    </div>
  );
}

function fieldDetails(err: ApiError): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(err.details))
    for (const d of err.details) if (d && typeof d.message === 'string') out[String(d.path)] = d.message;
  return out;
}

function TestConnection({ api, tunnel, onTested }: { api: Api; tunnel: Tunnel; onTested: () => void }) {
  const [result, setResult] = useState<TestResult | undefined>();
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | undefined>();
  const run = async () => {
    setRunning(true);
    setResult(undefined);
    setError(undefined);
    try {
      setResult(await api.test(tunnel.id));
      onTested();
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setRunning(false);
    }
  };
  const expected = EXPECTED_CHECKS[tunnel.type];
  const shown = result?.checks ?? [];
  // While it runs, every step it will take; once back, each as it came out, then any it never reached.
  const pending = running ? expected : result ? expected.filter((n) => !shown.some((c) => c.name === n)) : [];
  return (
    <section class="card" aria-labelledby="test-h">
      <div class="section-head">
        <h2 id="test-h">Test connection</h2>
        <button type="button" class="primary" onClick={run} disabled={running}>
          {running ? 'Testing…' : 'Test connection'}
        </button>
      </div>
      <p class="hint">Runs each step once, through to your service, and names the first one that fails.</p>
      {error && <Notice kind="error">{error}</Notice>}
      {(running || result) && (
        <ol
          class="checks"
          aria-live="polite"
          aria-busy={running}
          data-testid="checks"
          data-result={result ? (result.ok ? 'pass' : 'fail') : 'running'}
        >
          {shown.map((c) => (
            <li
              key={c.name}
              class={c.ok ? 'check ok' : 'check failed'}
              data-check={c.name}
              data-ok={String(c.ok)}
            >
              <span class="mark" aria-hidden="true">
                {c.ok ? '✓' : '✗'}
              </span>
              <span class="check-name">{CHECK_WORDS[c.name] ?? c.name}</span>
              <span class="visually-hidden">{c.ok ? 'passed' : 'failed'}</span>
              <span class="check-ms">{ms(c.ms)}</span>
              <span class="check-message">{c.message}</span>
              {c.hint && <span class="check-hint">{c.hint}</span>}
            </li>
          ))}
          {pending.map((name) => (
            <li key={name} class={running ? 'check running' : 'check skipped'}>
              <span class="mark" aria-hidden="true">
                {running ? '…' : '–'}
              </span>
              <span class="check-name">{CHECK_WORDS[name] ?? name}</span>
              <span class="check-message">{running ? 'checking' : 'not reached'}</span>
            </li>
          ))}
        </ol>
      )}
      {result && (
        <Notice kind={result.ok ? 'success' : 'error'}>
          {result.ok
            ? 'Every step passed: the platform reaches your service.'
            : 'A step failed: its hint says what to fix.'}
        </Notice>
      )}
    </section>
  );
}

function Events({ api, tunnel, now }: { api: Api; tunnel: Tunnel; now: number }) {
  const [events, setEvents] = useState<TunnelEvent[] | undefined>();
  const [error, setError] = useState<string | undefined>();
  // A new state means a new event: fetched when the status moves, not on every poll.
  const version = `${tunnel.status.state}|${tunnel.status.since}`;
  useEffect(() => {
    api.events(tunnel.id).then(
      (r) => {
        setEvents(r.items);
        setError(undefined);
      },
      (err: unknown) => setError(err instanceof ApiError ? err.message : String(err)),
    );
  }, [api, tunnel.id, version]);
  return (
    <section class="card" aria-labelledby="events-h">
      <h2 id="events-h">History</h2>
      {error && <Notice kind="error">{error}</Notice>}
      {events && events.length === 0 && <p>Nothing yet: the first connection appears here.</p>}
      {events && events.length > 0 && (
        <ol class="events">
          {events.map((e) => (
            <li key={`${e.at}-${e.to}`} class={`event to-${e.to}`}>
              <time dateTime={e.at} title={e.at}>
                {ago(e.at, now)}
              </time>
              <StatusDot state={e.to} />
              <span class="event-text">
                {e.error
                  ? `${codeWords(e.error.code)}: ${e.error.message}`
                  : e.cause === 'restart'
                    ? 'the service restarted (a deploy): not an outage'
                    : e.to === 'up' && e.downMs !== undefined
                      ? `back after ${ms(e.downMs)}`
                      : `from ${e.from}`}
              </span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

function Actions({
  api,
  tunnel,
  onChanged,
  onNewPrivateKey,
}: {
  api: Api;
  tunnel: Tunnel;
  onChanged: (t: Tunnel) => void;
  onNewPrivateKey: (key: string) => void;
}) {
  const [name, setName] = useState(tunnel.name);
  const [message, setMessage] = useState<{ kind: 'error' | 'success'; text: string } | undefined>();
  const [busy, setBusy] = useState(false);
  const rotateDialog = useRef<HTMLDialogElement>(null);
  const deleteDialog = useRef<HTMLDialogElement>(null);
  useEffect(() => setName(tunnel.name), [tunnel.name]);
  const act = async (what: () => Promise<string | undefined>) => {
    setBusy(true);
    setMessage(undefined);
    try {
      const text = await what();
      if (text) setMessage({ kind: 'success', text });
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof ApiError ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  const rename = (e: Event) => {
    e.preventDefault();
    void act(async () => {
      onChanged(await api.patch(tunnel.id, { name: name.trim() }));
      return 'Renamed.';
    });
  };
  const toggle = () =>
    act(async () => {
      const t = await api.patch(tunnel.id, { enabled: !tunnel.enabled });
      onChanged(t);
      return t.enabled
        ? 'Enabled: it connects again.'
        : 'Disabled: its connection is closed until you enable it.';
    });
  const rotate = () =>
    act(async () => {
      rotateDialog.current?.close();
      const t = await api.rotateKey(tunnel.id, tunnel.type === 'reverse' ? {} : undefined);
      onChanged(t);
      if (t.privateKey) onNewPrivateKey(t.privateKey);
      return tunnel.type === 'standard'
        ? 'New key made. Install the new authorized_keys line above on the bastion; connections open now keep working meanwhile, then remove the old line.'
        : 'New key made. Download it above, replace ~/.ssh/tunnelkeeper_' +
            tunnel.id +
            ' on your host and restart the tunnel; the old key no longer logs in.';
    });
  const remove = () =>
    act(async () => {
      await api.remove(tunnel.id);
      deleteDialog.current?.close();
      navigate(href.list);
      return undefined;
    });
  return (
    <section class="card" aria-labelledby="actions-h">
      <h2 id="actions-h">Settings</h2>
      {message && <Notice kind={message.kind}>{message.text}</Notice>}
      <form class="inline-form" onSubmit={rename} noValidate>
        <label for="rename">Name</label>
        <input id="rename" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit" disabled={busy || name.trim() === tunnel.name}>
          Rename
        </button>
      </form>
      <div class="actions">
        <button type="button" onClick={toggle} disabled={busy} aria-pressed={!tunnel.enabled}>
          {tunnel.enabled ? 'Disable' : 'Enable'}
        </button>
        <button type="button" onClick={() => rotateDialog.current?.showModal()} disabled={busy}>
          Rotate key…
        </button>
        <button
          type="button"
          class="danger"
          onClick={() => deleteDialog.current?.showModal()}
          disabled={busy}
        >
          Delete…
        </button>
      </div>
      <dialog ref={rotateDialog} aria-labelledby="rotate-h">
        <h2 id="rotate-h">Rotate the key of {tunnel.name}?</h2>
        <p>
          {tunnel.type === 'standard'
            ? 'A new key pair is made. You then install its authorized_keys line on the bastion; open connections keep working until then.'
            : 'A new key pair is made and shown once. The old key stops logging in: replace it on your host and restart the tunnel.'}
        </p>
        <div class="actions">
          <button type="button" class="primary" onClick={rotate}>
            Rotate key
          </button>
          <button type="button" onClick={() => rotateDialog.current?.close()}>
            Cancel
          </button>
        </div>
      </dialog>
      <dialog ref={deleteDialog} aria-labelledby="delete-h">
        <h2 id="delete-h">Delete {tunnel.name}?</h2>
        <p>Its connection closes, its port and key are freed. This cannot be undone.</p>
        <div class="actions">
          <button type="button" class="danger" onClick={remove}>
            Delete tunnel
          </button>
          <button type="button" onClick={() => deleteDialog.current?.close()}>
            Cancel
          </button>
        </div>
      </dialog>
    </section>
  );
}
