/** The console: sign in with an API key, then the tunnel list, the add form and each tunnel's page. */
import { useEffect, useMemo, useState } from 'preact/hooks';
import { Api, ApiError } from './api';
import { Notice, PageHeading } from './components';
import { AddTunnel } from './pages/add-tunnel';
import { TunnelList } from './pages/tunnel-list';
import { TunnelPage } from './pages/tunnel-page';
import { href, useRoute } from './route';
import { forgetKey, oneTime, savedKey, saveKey } from './session';

export function App() {
  const [key, setKey] = useState(savedKey);
  const [expired, setExpired] = useState(false);
  const signOut = (why?: 'expired') => {
    forgetKey();
    oneTime.clear();
    setExpired(why === 'expired');
    setKey(undefined);
  };
  const api = useMemo(() => (key ? new Api(key, () => signOut('expired')) : undefined), [key]);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href.list}>
          Tunnelkeeper
        </a>
        {api && (
          <nav aria-label="Main">
            <a href={href.list}>Tunnels</a>
            <a href={href.add}>Add tunnel</a>
            <a href="docs">API reference</a>
            <button type="button" class="link" onClick={() => signOut()}>
              Sign out
            </button>
          </nav>
        )}
      </header>
      <main id="main">
        {api ? (
          <Pages api={api} />
        ) : (
          <SignIn
            expired={expired}
            onSignedIn={(k) => {
              saveKey(k);
              setExpired(false);
              setKey(k);
            }}
          />
        )}
      </main>
    </>
  );
}

function Pages({ api }: { api: Api }) {
  const route = useRoute();
  switch (route.page) {
    case 'add':
      return <AddTunnel api={api} />;
    case 'tunnel':
      return <TunnelPage key={route.id} api={api} id={route.id} />;
    default:
      return <TunnelList api={api} />;
  }
}

function SignIn({ onSignedIn, expired }: { onSignedIn: (key: string) => void; expired: boolean }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (expired)
      setError('The API no longer accepts that key (revoked or replaced). Sign in with a current one.');
  }, [expired]);
  const submit = async (e: Event) => {
    e.preventDefault();
    const key = value.trim();
    if (!key) {
      setError('Paste your API key.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await new Api(key).list({ limit: 1 });
      onSignedIn(key);
    } catch (err) {
      setError(signInMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section class="sign-in card">
      <PageHeading>Sign in</PageHeading>
      <p>
        Use your workspace's API key (it starts with <code>tk_</code>). It stays in this tab only and is
        forgotten when you close it or sign out.
      </p>
      <form onSubmit={submit} noValidate>
        <div class={`field${error ? ' invalid' : ''}`}>
          <label for="api-key">API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="off"
            spellcheck={false}
            value={value}
            onInput={(e) => setValue(e.currentTarget.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'api-key-error' : undefined}
          />
          {error && (
            <p class="field-error" id="api-key-error" role="alert">
              {error}
            </p>
          )}
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
      <Notice kind="info">
        Running it yourself? <code>npm start</code> prints the key of the <code>default</code> workspace on
        its first start.
      </Notice>
    </section>
  );
}

function signInMessage(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 401)
      return 'That API key is not valid: check that you pasted the whole key, or ask for a new one.';
    if (err.status === 429) return 'Too many attempts from this address; wait a few seconds and try again.';
    return `${err.message}`;
  }
  return 'Could not reach the API.';
}
