/**
 * One form for both types. The API validates (its `validation_failed` details land beside their
 * fields); the form only shapes the body, sending what was typed so the API's message applies.
 */
import { useState } from 'preact/hooks';
import { type Api, ApiError, fieldErrors } from '../api';
import { Field, Notice, PageHeading } from '../components';
import { href, navigate } from '../route';
import { oneTime } from '../session';

type Kind = 'reverse' | 'standard';
type Auth = 'generated' | 'private_key' | 'password';

interface Form {
  type: Kind;
  name: string;
  serviceHost: string;
  servicePort: string;
  reverseKey: 'generate' | 'paste';
  publicKey: string;
  sshHost: string;
  sshPort: string;
  sshUser: string;
  hostKeyFingerprint: string;
  auth: Auth;
  keyType: 'ed25519' | 'rsa' | 'ecdsa';
  privateKey: string;
  passphrase: string;
  password: string;
}

const EMPTY: Form = {
  type: 'reverse',
  name: '',
  serviceHost: '',
  servicePort: '',
  reverseKey: 'generate',
  publicKey: '',
  sshHost: '',
  sshPort: '22',
  sshUser: '',
  hostKeyFingerprint: '',
  auth: 'generated',
  keyType: 'ed25519',
  privateKey: '',
  passphrase: '',
  password: '',
};

/** A port as typed: a number when it is one, else the text itself so the API names the problem. */
const port = (text: string): number | string => (/^\d{1,6}$/.test(text.trim()) ? Number(text.trim()) : text);

/** The create body for what the form holds (exported for its tests). */
export function createBody(f: Form): Record<string, unknown> {
  const service = { host: f.serviceHost.trim(), port: port(f.servicePort) };
  if (f.type === 'reverse') {
    return {
      type: 'reverse',
      name: f.name.trim(),
      service,
      ...(f.reverseKey === 'paste' ? { publicKey: f.publicKey.trim() } : {}),
    };
  }
  const auth =
    f.auth === 'generated'
      ? { method: 'generated', keyType: f.keyType }
      : f.auth === 'private_key'
        ? {
            method: 'private_key',
            privateKey: f.privateKey,
            ...(f.passphrase ? { passphrase: f.passphrase } : {}),
          }
        : { method: 'password', password: f.password };
  return {
    type: 'standard',
    name: f.name.trim(),
    ssh: {
      host: f.sshHost.trim(),
      port: f.sshPort.trim() === '' ? 22 : port(f.sshPort),
      user: f.sshUser.trim(),
      ...(f.hostKeyFingerprint.trim() ? { hostKeyFingerprint: f.hostKeyFingerprint.trim() } : {}),
    },
    service,
    auth,
  };
}

/** The API paths each field answers for; errors at other paths are listed above the button. */
const FIELD_PATHS = [
  'name',
  'service.host',
  'service.port',
  'publicKey',
  'ssh.host',
  'ssh.port',
  'ssh.user',
  'ssh.hostKeyFingerprint',
  'auth.keyType',
  'auth.privateKey',
  'auth.passphrase',
  'auth.password',
];

const fieldId = (path: string) => `f-${path.replace('.', '-')}`;

export function AddTunnel({ api }: { api: Api }) {
  const [form, setForm] = useState<Form>(EMPTY);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [failure, setFailure] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const set = <K extends keyof Form>(key: K, value: Form[K]) => setForm((f) => ({ ...f, [key]: value }));
  const text = (key: keyof Form) => ({
    value: String(form[key]),
    onInput: (e: Event) => set(key, (e.currentTarget as HTMLInputElement).value as never),
  });

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    setFailure(undefined);
    try {
      const tunnel = await api.create(createBody(form));
      if (tunnel.privateKey) oneTime.set(tunnel.id, tunnel.privateKey);
      navigate(href.tunnel(tunnel.id));
    } catch (err) {
      const byField = fieldErrors(err);
      setErrors(byField);
      const elsewhere = Object.entries(byField).filter(([path]) => !FIELD_PATHS.includes(path));
      if (Object.keys(byField).length > 0) {
        setFailure(
          elsewhere.length > 0
            ? `Fix the fields marked below. ${elsewhere.map(([p, m]) => `${p || 'body'}: ${m}`).join('; ')}`
            : 'Fix the fields marked below.',
        );
        // Focus the first field in error, as the order of the form has it.
        const first = FIELD_PATHS.find((p) => byField[p]);
        if (first) setTimeout(() => document.getElementById(fieldId(first))?.focus(), 0);
      } else {
        setFailure(err instanceof ApiError ? err.message : 'The tunnel could not be created.');
      }
    } finally {
      setBusy(false);
    }
  };

  const field = (
    path: string,
    label: string,
    input: (p: object) => preact.ComponentChildren,
    hint?: string,
  ) => (
    <Field id={fieldId(path)} label={label} error={errors[path]} hint={hint}>
      {input}
    </Field>
  );

  return (
    <section class="card form-card">
      <PageHeading>Add a tunnel</PageHeading>
      <form onSubmit={submit} noValidate aria-describedby={failure ? 'form-failure' : undefined}>
        <fieldset class="type-choice">
          <legend>Type</legend>
          <label class={form.type === 'reverse' ? 'choice selected' : 'choice'}>
            <input
              type="radio"
              name="type"
              value="reverse"
              checked={form.type === 'reverse'}
              onChange={() => set('type', 'reverse')}
            />
            <strong>Reverse</strong>
            <span>A host in your network runs ssh out to us. No inbound firewall change, no bastion.</span>
          </label>
          <label class={form.type === 'standard' ? 'choice selected' : 'choice'}>
            <input
              type="radio"
              name="type"
              value="standard"
              checked={form.type === 'standard'}
              onChange={() => set('type', 'standard')}
            />
            <strong>Standard</strong>
            <span>We log in to your SSH bastion and forward to the service behind it.</span>
          </label>
        </fieldset>

        {field(
          'name',
          'Name',
          (p) => (
            <input {...p} type="text" autoComplete="off" {...text('name')} />
          ),
          'For you: "orders-db (prod)".',
        )}

        <fieldset>
          <legend>
            Service (your database, as {form.type === 'reverse' ? 'the host running ssh' : 'the bastion'}{' '}
            reaches it)
          </legend>
          <div class="row">
            {field('service.host', 'Service host', (p) => (
              <input {...p} type="text" autoComplete="off" spellcheck={false} {...text('serviceHost')} />
            ))}
            {field('service.port', 'Service port', (p) => (
              <input {...p} type="text" inputMode="numeric" class="port" {...text('servicePort')} />
            ))}
          </div>
        </fieldset>

        {form.type === 'reverse' ? (
          <fieldset>
            <legend>Key</legend>
            <label class="inline">
              <input
                type="radio"
                name="reverseKey"
                checked={form.reverseKey === 'generate'}
                onChange={() => set('reverseKey', 'generate')}
              />
              Generate a key pair for me (the private key is shown once, then forgotten)
            </label>
            <label class="inline">
              <input
                type="radio"
                name="reverseKey"
                checked={form.reverseKey === 'paste'}
                onChange={() => set('reverseKey', 'paste')}
              />
              I have a key: paste its public key
            </label>
            {form.reverseKey === 'paste' &&
              field(
                'publicKey',
                'Public key',
                (p) => (
                  <textarea
                    {...p}
                    rows={3}
                    spellcheck={false}
                    placeholder="ssh-ed25519 AAAA… you@host"
                    {...text('publicKey')}
                  />
                ),
                'One line from your .pub file. The private key never leaves your host.',
              )}
          </fieldset>
        ) : (
          <>
            <fieldset>
              <legend>Bastion</legend>
              <div class="row">
                {field('ssh.host', 'Bastion host', (p) => (
                  <input {...p} type="text" autoComplete="off" spellcheck={false} {...text('sshHost')} />
                ))}
                {field('ssh.port', 'SSH port', (p) => (
                  <input {...p} type="text" inputMode="numeric" class="port" {...text('sshPort')} />
                ))}
              </div>
              {field(
                'ssh.user',
                'User on the bastion',
                (p) => (
                  <input {...p} type="text" autoComplete="off" spellcheck={false} {...text('sshUser')} />
                ),
                'A user of its own, e.g. tunnelkeeper: the key is installed in its authorized_keys.',
              )}
              {field(
                'ssh.hostKeyFingerprint',
                'Host key fingerprint (optional)',
                (p) => (
                  <input
                    {...p}
                    type="text"
                    autoComplete="off"
                    spellcheck={false}
                    placeholder="SHA256:…"
                    {...text('hostKeyFingerprint')}
                  />
                ),
                'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the bastion. Without it, the first key seen is pinned.',
              )}
            </fieldset>
            <fieldset>
              <legend>How we log in</legend>
              <label class="inline">
                <input
                  type="radio"
                  name="auth"
                  checked={form.auth === 'generated'}
                  onChange={() => set('auth', 'generated')}
                />
                A key we generate (recommended: you install one line on the bastion)
              </label>
              <label class="inline">
                <input
                  type="radio"
                  name="auth"
                  checked={form.auth === 'private_key'}
                  onChange={() => set('auth', 'private_key')}
                />
                Your own private key
              </label>
              <label class="inline">
                <input
                  type="radio"
                  name="auth"
                  checked={form.auth === 'password'}
                  onChange={() => set('auth', 'password')}
                />
                A password
              </label>
              {form.auth === 'generated' &&
                field('auth.keyType', 'Key type', (p) => (
                  <select
                    {...p}
                    value={form.keyType}
                    onChange={(e) => set('keyType', e.currentTarget.value as Form['keyType'])}
                  >
                    <option value="ed25519">Ed25519 (recommended)</option>
                    <option value="ecdsa">ECDSA</option>
                    <option value="rsa">RSA (old bastions)</option>
                  </select>
                ))}
              {form.auth === 'private_key' && (
                <>
                  {field(
                    'auth.privateKey',
                    'Private key',
                    (p) => (
                      <textarea
                        {...p}
                        rows={5}
                        spellcheck={false}
                        placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
                        {...text('privateKey')}
                      />
                    ),
                    'Stored encrypted; never shown again.',
                  )}
                  {field('auth.passphrase', 'Passphrase (if the key has one)', (p) => (
                    <input {...p} type="password" autoComplete="off" {...text('passphrase')} />
                  ))}
                </>
              )}
              {form.auth === 'password' &&
                field(
                  'auth.password',
                  'Password',
                  (p) => <input {...p} type="password" autoComplete="off" {...text('password')} />,
                  'Stored encrypted; never shown again.',
                )}
            </fieldset>
          </>
        )}

        {failure && (
          <div id="form-failure">
            <Notice kind="error">{failure}</Notice>
          </div>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create tunnel'}
          </button>
          <a href={href.list}>Cancel</a>
        </div>
      </form>
    </section>
  );
}
