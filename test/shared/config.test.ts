import { describe, expect, it } from 'vitest';
import { envVariables, parseEnv } from '../../shared/config';
import { ConfigError } from '../../shared/errors';

/** Rejects with ConfigError and hands back its message. */
function configError(env: Record<string, string | undefined>): string {
  try {
    parseEnv(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).name).toBe('ConfigError');
    return (err as ConfigError).message;
  }
  return expect.unreachable('expected a ConfigError');
}

/** CONTRACT.md, "Configuration of npm start": every default, exactly. */
const CONTRACT_DEFAULTS: [string, unknown][] = [
  ['PORT', 8787],
  ['HOST', '127.0.0.1'],
  ['SSH_PORT', 2222],
  ['DATA_DIR', '.data'],
  ['PUBLIC_SSH_HOST', 'localhost'],
  ['TUNNEL_BIND_HOST', '127.0.0.1'],
  ['TUNNEL_PORT_RANGE', { from: 20000, to: 29999 }],
  ['HEARTBEAT_INTERVAL_MS', 15000],
  ['SWEEP_INTERVAL_MS', 60000],
  ['DOWN_GRACE_MS', 120000],
  ['SSH_KEEPALIVE_INTERVAL_MS', 15000],
  ['LOG_LEVEL', 'info'],
];

/** Variables that are unset unless given: the runtime decides (generated token, OS port, ...). */
const UNSET_BY_DEFAULT = [
  'ADMIN_TOKEN',
  'BOOTSTRAP_API_KEY',
  'PUBLIC_SSH_PORT',
  'ALERT_WEBHOOK_URL',
  'ALERT_WEBHOOK_SECRET',
  'ALERT_TOPIC_ARN',
  'ALLOW_PRIVATE_SSH_HOSTS',
  'DYNAMODB_ENDPOINT',
  'DYNAMODB_LOCAL_PORT',
];

describe('parseEnv', () => {
  it.each(CONTRACT_DEFAULTS)('defaults %s to the contract value %j', (name, value) => {
    expect(parseEnv({})).toHaveProperty([name], value);
  });

  it.each(CONTRACT_DEFAULTS)('reads an empty %s as its default', (name, value) => {
    expect(parseEnv({ [name]: '' })).toHaveProperty([name], value);
  });

  it.each(UNSET_BY_DEFAULT)('leaves %s unset when absent or empty', (name) => {
    expect(parseEnv({})[name as keyof ReturnType<typeof parseEnv>]).toBeUndefined();
    expect(parseEnv({ [name]: '' })[name as keyof ReturnType<typeof parseEnv>]).toBeUndefined();
  });

  it('ignores variables it does not know', () => {
    expect(parseEnv({ PATH: '/usr/bin', HOME: '/root', NODE_OPTIONS: '--x' }).PORT).toBe(8787);
  });

  it('parses given values into their types', () => {
    const env = parseEnv({
      PORT: '0',
      HOST: '0.0.0.0',
      SSH_PORT: '22',
      PUBLIC_SSH_PORT: '443',
      TUNNEL_PORT_RANGE: '40000-40009',
      HEARTBEAT_INTERVAL_MS: '250',
      DOWN_GRACE_MS: '0',
      ALERT_WEBHOOK_URL: 'https://hooks.example.com/tunnels',
      DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000',
      LOG_LEVEL: 'debug',
    });
    expect(env).toMatchObject({
      PORT: 0,
      HOST: '0.0.0.0',
      SSH_PORT: 22,
      PUBLIC_SSH_PORT: 443,
      TUNNEL_PORT_RANGE: { from: 40000, to: 40009 },
      HEARTBEAT_INTERVAL_MS: 250,
      DOWN_GRACE_MS: 0,
      ALERT_WEBHOOK_URL: 'https://hooks.example.com/tunnels',
      DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000',
      LOG_LEVEL: 'debug',
    });
  });

  it.each([
    ['1-65535', { from: 1, to: 65535 }],
    ['20000-20000', { from: 20000, to: 20000 }],
  ])('accepts the port range %s', (value, range) => {
    expect(parseEnv({ TUNNEL_PORT_RANGE: value }).TUNNEL_PORT_RANGE).toEqual(range);
  });

  it.each([
    ['true', true],
    ['1', true],
    ['yes', true],
    ['false', false],
    ['0', false],
    ['no', false],
  ])('reads ALLOW_PRIVATE_SSH_HOSTS=%s as %s', (value, expected) => {
    expect(parseEnv({ ALLOW_PRIVATE_SSH_HOSTS: value }).ALLOW_PRIVATE_SSH_HOSTS).toBe(expected);
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '80.5'],
    ['SSH_PORT', '-1'],
    ['DYNAMODB_LOCAL_PORT', 'eight'],
    ['TUNNEL_PORT_RANGE', '30000-20000'],
    ['TUNNEL_PORT_RANGE', '20000'],
    ['TUNNEL_PORT_RANGE', '0-100'],
    ['TUNNEL_PORT_RANGE', '20000-70000'],
    ['HEARTBEAT_INTERVAL_MS', '0'],
    ['SWEEP_INTERVAL_MS', 'soon'],
    ['DOWN_GRACE_MS', '-5'],
    ['LOG_LEVEL', 'verbose'],
    ['ALERT_WEBHOOK_URL', 'notaurl'],
    ['DYNAMODB_ENDPOINT', 'localhost'],
    ['ALLOW_PRIVATE_SSH_HOSTS', 'maybe'],
    ['TABLE_NAME', 'ab'],
    ['ALERT_TOPIC_ARN', 'tunnel-alerts'],
    ['ALERT_TOPIC_ARN', 'arn:aws:sqs:us-east-1:123456789012:tunnel-alerts'],
    // Written into every customer command and known_hosts line.
    ['PUBLIC_SSH_HOST', 'tunnels.example.com:22'],
    ['PUBLIC_SSH_HOST', 'fe80::1%eth0'],
    ['PUBLIC_SSH_HOST', 'tunnels example'],
  ])('rejects %s=%s with a ConfigError naming it', (name, value) => {
    expect(configError({ [name]: value })).toMatch(new RegExp(`\\b${name}: `));
  });

  it('names every bad variable at once, and no good one', () => {
    const message = configError({
      PORT: 'abc',
      TUNNEL_PORT_RANGE: '30000-20000',
      LOG_LEVEL: 'verbose',
      ALERT_WEBHOOK_URL: 'notaurl',
      SSH_PORT: '2200',
    });
    for (const name of ['PORT', 'TUNNEL_PORT_RANGE', 'LOG_LEVEL', 'ALERT_WEBHOOK_URL']) {
      expect(message).toMatch(new RegExp(`\\b${name}: `));
    }
    expect(message).not.toContain('SSH_PORT');
  });

  it.each([
    'arn:aws:sns:us-east-1:123456789012:tunnel-alerts',
    'arn:aws:sns:eu-west-1:123456789012:tunnel-alerts.fifo',
    'arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts_1',
  ])('accepts the SNS topic ARN %s', (arn) => {
    expect(parseEnv({ ALERT_TOPIC_ARN: arn }).ALERT_TOPIC_ARN).toBe(arn);
  });

  it.each(['ADMIN_TOKEN', 'BOOTSTRAP_API_KEY', 'ALERT_WEBHOOK_SECRET'])(
    'rejects a short %s without echoing it',
    (name) => {
      const message = configError({ [name]: 'tk_hunter2' });
      expect(message).toContain(`${name}: must be at least 16 characters`);
      expect(message).not.toContain('hunter2');
    },
  );

  it('rejects a BOOTSTRAP_API_KEY no Authorization header could carry, without echoing it', () => {
    const message = configError({ BOOTSTRAP_API_KEY: 'tk_correct horse battery staple' });
    expect(message).toContain('BOOTSTRAP_API_KEY: may hold only letters, digits and . _ ~ + / = -');
    expect(message).not.toContain('horse');
  });
});

describe('EGRESS_IPS', () => {
  it('defaults to none, also when empty', () => {
    expect(parseEnv({}).EGRESS_IPS).toEqual([]);
    expect(parseEnv({ EGRESS_IPS: '' }).EGRESS_IPS).toEqual([]);
    expect(parseEnv({ EGRESS_IPS: ' , ' }).EGRESS_IPS).toEqual([]);
  });

  it('reads IPv4 and IPv6 addresses, comma-separated, in order', () => {
    expect(parseEnv({ EGRESS_IPS: '203.0.113.10, 2001:db8::1,198.51.100.2' }).EGRESS_IPS).toEqual([
      '203.0.113.10',
      '2001:db8::1',
      '198.51.100.2',
    ]);
  });

  it.each([
    ['a host name', 'nat.example.com', '"nat.example.com"'],
    ['a CIDR range', '203.0.113.0/24', '"203.0.113.0/24"'],
    ['an address out of range', '203.0.113.256', '"203.0.113.256"'],
    ['a space instead of a comma', '203.0.113.10 203.0.113.11', '"203.0.113.10 203.0.113.11"'],
    ['one bad among good ones', '203.0.113.10,not-an-ip,2001:db8::1', '"not-an-ip"'],
  ])('refuses %s, naming the entry', (_, value, named) => {
    const message = configError({ EGRESS_IPS: value });
    expect(message).toContain(`EGRESS_IPS: not an IP address: ${named}`);
  });
});

describe('CONNECT_HOSTS', () => {
  it('reads blocks of ports and their hosts, in port order', () => {
    const env = parseEnv({
      TUNNEL_PORT_RANGE: '20000-20099',
      CONNECT_HOSTS: ' 20050-20099=connect-2.internal, 20000-20049=connect-1.internal ',
    });
    expect(env.CONNECT_HOSTS).toEqual([
      { from: 20000, to: 20049, host: 'connect-1.internal' },
      { from: 20050, to: 20099, host: 'connect-2.internal' },
    ]);
  });

  it('is unset by default: connect.host is the worker that carries the tunnel', () => {
    expect(parseEnv({}).CONNECT_HOSTS).toBeUndefined();
  });

  it.each([
    ['an entry without a host', '20000-29999', /"20000-29999": expected FROM-TO=HOST/],
    [
      'a reversed block',
      '29999-20000=connect.internal',
      /"29999-20000=connect.internal": expected 1 <= FROM/,
    ],
    ['a host with a port', '20000-29999=connect.internal:80', /the host must be a DNS name or an IP address/],
    [
      'overlapping blocks',
      '20000-25000=a.internal,24000-29999=b.internal',
      /24000-29999 overlaps 20000-25000/,
    ],
    [
      'blocks that leave tunnel ports without a host',
      '20000-20009=a.internal,20020-29998=b.internal',
      /CONNECT_HOSTS: covers no host for TUNNEL_PORT_RANGE port\(s\) 20010-20019, 29999/,
    ],
  ])('refuses %s, naming it', (_, value, message) => {
    expect(configError({ CONNECT_HOSTS: value })).toMatch(message);
  });
});

describe('envVariables', () => {
  it.each([
    ['the defaults', {}],
    [
      'every variable set',
      {
        PORT: '0',
        HOST: '0.0.0.0',
        SSH_PORT: '22',
        SSH_HOST: '10.0.0.1',
        PUBLIC_SSH_PORT: '443',
        WORKER_ADDRESS: '10.0.0.2',
        ECS_CONTAINER_METADATA_URI_V4: 'http://169.254.170.2/v4/abc',
        SECRETS_MANAGER_ENDPOINT: 'http://127.0.0.1:4566',
        ADMIN_TOKEN: 'tka_0123456789abcdef',
        BOOTSTRAP_API_KEY: 'tk_0123456789abcdef',
        TUNNEL_PORT_RANGE: '40000-40009',
        DOWN_GRACE_MS: '0',
        ALERT_WEBHOOK_URL: 'https://hooks.example.com/tunnels',
        ALERT_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
        ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:tunnel-alerts',
        ALLOW_PRIVATE_SSH_HOSTS: 'no',
        DYNAMODB_ENDPOINT: 'http://127.0.0.1:8000',
        DYNAMODB_LOCAL_PORT: '8001',
        LOG_LEVEL: 'debug',
        EGRESS_IPS: '203.0.113.10,2001:db8::1',
        CONNECT_HOSTS: '40000-40004=connect-1.internal,40005-40009=10.0.0.9',
        GATEWAY_TARGET_GROUP_ARN:
          'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/Tunnel-Gatew-0AAA/0123456789abcdef',
        CONNECT_LOAD_BALANCER_ARNS:
          'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/a/aaaaaaaaaaaaaaaa,' +
          'arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/b/bbbbbbbbbbbbbbbb',
      },
    ],
  ])('gives variables that parse back to the same configuration: %s', (_, given) => {
    const env = parseEnv(given);
    const variables = envVariables(env);
    expect(parseEnv(variables)).toEqual(env);
    expect(Object.values(variables).every((v) => typeof v === 'string')).toBe(true);
  });
});

describe('SSH endpoint admission and login variables', () => {
  it('defaults to the documented values, MAX_SESSIONS_PER_TUNNEL to the contract extension 4', () => {
    expect(parseEnv({})).toMatchObject({
      SSH_BANNER_TIMEOUT_MS: 10_000,
      SSH_MAX_STARTUPS: { start: 100, rate: 30, full: 1000 },
      SSH_PER_SOURCE_MAX_STARTUPS: 64,
      MAX_SESSIONS_PER_TUNNEL: 4,
      SSH_LOGIN_CACHE_TTL_MS: 21_600_000,
      SSH_LOGIN_CACHE_MAX_TUNNELS: 10_000,
    });
  });

  it.each([
    ['10:30:100', { start: 10, rate: 30, full: 100 }],
    ['50', { start: 50, rate: 100, full: 50 }],
    ['0:0:5', { start: 0, rate: 0, full: 5 }],
  ])('reads SSH_MAX_STARTUPS=%s as sshd does', (value, expected) => {
    expect(parseEnv({ SSH_MAX_STARTUPS: value }).SSH_MAX_STARTUPS).toEqual(expected);
  });

  it.each(['100:30', '30:101:100', '200:30:100', '0', 'x', '1:2:3:4'])(
    'rejects SSH_MAX_STARTUPS=%s',
    (value) => {
      expect(configError({ SSH_MAX_STARTUPS: value })).toContain('SSH_MAX_STARTUPS');
    },
  );

  it('gives variables that parse back to the same configuration', () => {
    const env = parseEnv({
      SSH_MAX_STARTUPS: '10:50:20',
      MAX_SESSIONS_PER_TUNNEL: '2',
      SSH_LOGIN_CACHE_TTL_MS: '0',
    });
    expect(parseEnv(envVariables(env))).toEqual(env);
    expect(envVariables(env).SSH_MAX_STARTUPS).toBe('10:50:20');
  });
});
