/** What every measurement gets: the settings of this run and the systems set up for it. */
import type { Tunnel } from '../shared/schemas';
import type { Customer } from '../test/helpers/customer';
import type { Figure } from './report';
import type { Cleanup } from './support/cleanup';
import type { RunningSsh, Sshd } from './support/openssh';
import type { BenchStack } from './support/stack';
import type { CustomerService } from './support/traffic';
import type { TunnelClients } from './support/tunnel-clients';
import type { SshTarget } from './support/tunnel-clients-protocol';

const MiB = 1024 * 1024;

export interface BenchSettings {
  quick: boolean;
  /** Bytes per bulk transfer, each way. */
  bulkBytes: number;
  bulkRuns: number;
  /** Sequential connect + 1-byte echo, per path. */
  connections: number;
  /**
   * Idle reverse tunnels held at once on our gateway (the stock client's among them), and on sshd
   * (each of its sessions is 2 processes).
   */
  idleOurs: number;
  idleOpenssh: number;
  /** Idle tunnels at the DynamoDB counts after the first (at 1), ascending, none above `idleOurs`. */
  dynamoTunnels: number[];
  dynamoWindowMs: number;
  /**
   * The stack's sweep interval. Steady-state writes do not depend on it (sweeps write transitions
   * only), but the bench waits for a sweep to record new tunnels as up before counting, and a sweep
   * over thousands of tunnels holds the event loop it shares with the gateway in `npm start`.
   */
  sweepIntervalMs: number;
  loginLadder: number[];
  loginStepMs: number;
  api: { create: number; get: number; status: number };
}

export function settingsFor(quick: boolean): BenchSettings {
  return quick
    ? {
        quick,
        bulkBytes: 128 * MiB,
        bulkRuns: 3,
        connections: 100,
        idleOurs: 1_000,
        idleOpenssh: 40,
        dynamoTunnels: [250, 1_000],
        dynamoWindowMs: 15_000,
        sweepIntervalMs: 5_000,
        loginLadder: [1, 4, 16],
        loginStepMs: 1_500,
        api: { create: 50, get: 200, status: 200 },
      }
    : {
        quick,
        bulkBytes: 1024 * MiB,
        bulkRuns: 3,
        connections: 500,
        idleOurs: 10_000,
        idleOpenssh: 200,
        dynamoTunnels: [1_000, 10_000],
        dynamoWindowMs: 60_000,
        sweepIntervalMs: 30_000,
        loginLadder: [1, 2, 4, 8, 16, 32],
        loginStepMs: 4_000,
        api: { create: 300, get: 1_000, status: 1_000 },
      };
}

export interface Bench {
  settings: BenchSettings;
  cleanup: Cleanup;
  /** Progress lines (stderr), so stdout carries only the summary. */
  log(line: string): void;
  stack: BenchStack;
  /** The OpenSSH anchor: reverse tunnels go to it as they go to our gateway. */
  sshd: Sshd;
  /** A second sshd: the customer's bastion for standard tunnels and for `ssh -N -L`. */
  bastion: Sshd;
  customer: Customer;
  key: { privateKey: string; publicKey: string };
  service: CustomerService;
  clients: TunnelClients;
  /** Our gateway and sshd as ssh2-customer targets. */
  targets: { ours: SshTarget; openssh: SshTarget };
  tunnels: {
    /** Carries the stock-client `ssh -R` throughout. */
    stock: Tunnel;
    /** For the `-c aes128-gcm@openssh.com` client. */
    aes: Tunnel;
    /**
     * Login-rate tunnels (the login user is the id; the forward is the port), written to the table
     * when a phase first needs them (setup.ts `poolTunnels`): none exist while the idle phase
     * counts DynamoDB reads at 1 tunnel.
     */
    pool: { id: string; port: number }[];
  };
  /** The stock-client `ssh -N -R` to each side, up from set-up on. */
  stockSsh: { ours: RunningSsh; openssh: RunningSsh };
}

/** What a measurement that needs neither stack nor sshd gets. */
export type BenchBasics = Pick<Bench, 'settings' | 'cleanup' | 'log'>;

/** What a measurement hands back: its rows for the table, and raw data for results.json. */
export interface Measured {
  figures: Figure[];
  details: Record<string, unknown>;
  notes?: string[];
}
