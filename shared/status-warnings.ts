/**
 * Status warnings (CONTRACT.md, Extensions): what a customer should know while the state itself
 * holds, each with what happened, what to do and since when. Pure, from the tunnel's configuration,
 * its STATE item, the SIGNALS item the gateways keep (tunnel-signals.ts) and the status already
 * evaluated. Warnings never change the state and never page (the sweeper does not read them).
 */
import { serviceTagOf } from './command-tag';
import { connectorsWarning } from './connectors';
import type { TunnelStateItem } from './gateway-items';
import type { Status, StatusWarning, Traffic } from './schemas';
import { evaluateStatus, evaluateWithUnreadable, type StatusInput, type StatusView } from './status';
import { hostPort } from './status-errors';
import type { UnreadableItem } from './store/read-items';
import type { TunnelRecord } from './tunnel';
import {
  CONTENTION_QUIET_MS,
  type ContentionSignal,
  type LoginRefusedSignal,
  type ServiceSignal,
  type TunnelSignals,
} from './tunnel-signals';
import { uptimeOf } from './uptime';

/** What the warnings need of a tunnel's configuration (a `TunnelRecord` fits). */
export type WarningTunnel = Pick<
  TunnelRecord,
  'id' | 'type' | 'service' | 'publicKeyFingerprint' | 'serviceChangedAt'
> & { ssh?: { host: string; port: number } };

export interface WarningInput {
  tunnel: WarningTunnel;
  state?: TunnelStateItem;
  signals?: TunnelSignals;
  /** The status as evaluated (status.ts): warnings about a connection only show while it is up. */
  status: Status;
  now: Date;
}

/** The warnings of one tunnel, in a fixed order: login, contention, command, service. */
export function signalWarnings({ tunnel, state, signals, status, now }: WarningInput): StatusWarning[] {
  // A disabled tunnel refuses everything on purpose; its state says all there is.
  if (status.state === 'disabled') return [];
  const warnings: StatusWarning[] = [];
  const refused = signals?.loginRefused;
  if (refused && !loginSucceededAfter(refused, state)) warnings.push(loginRefused(tunnel, refused));
  const contention = signals?.contention;
  if (contention && now.getTime() - Date.parse(contention.lastAt) < CONTENTION_QUIET_MS) {
    warnings.push(sessionContention(contention));
  }
  const isUp = status.state === 'up' && state?.state === 'up';
  if (isUp && tunnel.type === 'reverse') {
    const outdated = commandOutdated(tunnel, state);
    if (outdated) warnings.push(outdated);
  }
  const service = signals?.service;
  if (isUp && service && !service.reachable) warnings.push(serviceUnreachable(tunnel, service));
  return warnings;
}

/** A STATE item written by a login after the refusal (reverse: `connectedAt` is the login's time). */
function loginSucceededAfter(refused: LoginRefusedSignal, state: TunnelStateItem | undefined): boolean {
  const loggedIn = state?.connectedAt;
  return loggedIn !== undefined && Date.parse(loggedIn) > Date.parse(refused.at);
}

function loginRefused(tunnel: WarningTunnel, r: LoginRefusedSignal): StatusWarning {
  const key = r.keyFingerprint ? `key ${r.keyFingerprint}, ` : '';
  const message =
    `a login as this tunnel was refused at ${r.at}: ${r.reason} (${key}from ${r.source}, ` +
    `${r.method} authentication)${r.since === r.at ? '' : `; refused alike since ${r.since}`}`;
  const stranger = `If you do not know ${r.source}, someone else is trying to log in as this tunnel.`;
  const hints: Record<LoginRefusedSignal['kind'], string> = {
    wrong_key:
      `The ssh client offered ${r.keyFingerprint ?? 'a key'}, but this tunnel accepts only ` +
      `${tunnel.publicKeyFingerprint} (publicKeyFingerprint). Put the tunnel's private key at ` +
      `~/.ssh/tunnelkeeper_${tunnel.id} on the host that runs the command (ssh-keygen -lf shows a key's ` +
      'fingerprint), or rotate-key with the public key the host has. ' +
      stranger,
    bad_signature:
      "The client offered the tunnel's key but its signature did not verify: update the ssh client, or " +
      'check the agent that signs for it. ' +
      stranger,
    method:
      `Only public-key authentication is accepted: run a command from reverse.commands, which logs in ` +
      `with the key at ~/.ssh/tunnelkeeper_${tunnel.id}. ${stranger}`,
    disabled:
      'The tunnel was disabled when this login came: enable it (PATCH enabled: true) or stop the command.',
    too_many_sessions:
      'Too many sessions of this tunnel at once (MAX_SESSIONS_PER_TUNNEL): another copy of its ssh or ' +
      'autossh runs somewhere; stop the extra ones.',
  };
  return {
    code: 'login_refused',
    message,
    hint: `${hints[r.kind]} Clears with the next login that succeeds.`,
    since: r.since,
  };
}

function sessionContention(c: ContentionSignal): StatusWarning {
  return {
    code: 'session_contention',
    message:
      `logins of this tunnel keep taking over from each other: ${c.takeovers} takeovers within a minute ` +
      `(the latest at ${c.lastAt}), from ${c.sources.join(', ')}`,
    hint:
      "Each login with the tunnel's key takes the tunnel over from the session before it, so two or more " +
      "hosts (or two copies on one host) run this tunnel's ssh, autossh or systemd unit and fight over it. " +
      `Keep one and stop the others; the warning clears after ${CONTENTION_QUIET_MS / 60_000} minutes without a takeover.`,
    since: c.since,
  };
}

/**
 * The customer's session runs a command issued for an earlier service: its tag (command-tag.ts)
 * is another service's, or it has none and the service was changed since tags exist. An untagged
 * session of a tunnel whose service never changed runs a command from before tags that is still
 * right, and is not warned about.
 */
function commandOutdated(tunnel: WarningTunnel, state: TunnelStateItem): StatusWarning | undefined {
  const current = serviceTagOf(tunnel.service);
  const tag = state.commandTag;
  const changedAt = tunnel.serviceChangedAt;
  if (tag === current || (tag === undefined && changedAt === undefined)) return undefined;
  const connectedAt = state.connectedAt ?? state.since;
  const since = changedAt && Date.parse(changedAt) > Date.parse(connectedAt) ? changedAt : connectedAt;
  const service = hostPort(tunnel.service.host, tunnel.service.port);
  const what =
    tag === undefined
      ? `runs a command without a service tag, from before the service was changed to ${service} at ${changedAt}`
      : `runs a command issued for another service: its -R carries the tag ${tag}, the current service ${service} has ${current}`;
  return {
    code: 'command_outdated',
    message: `the customer's ssh session (connected at ${connectedAt}) ${what}; it may still forward to the old target`,
    hint:
      '-R carries only the listen side to Tunnelkeeper, so a running command keeps forwarding to the target ' +
      'it was started with. Replace it on the customer host with the current reverse.commands (ssh, autossh, ' +
      `systemd or crontab) and restart it; the warning clears when a session with the tag ${current} connects.`,
    since,
  };
}

function serviceUnreachable(tunnel: WarningTunnel, s: ServiceSignal): StatusWarning {
  const service = hostPort(tunnel.service.host, tunnel.service.port);
  const reason = s.message ? `: ${s.message}` : '';
  if (tunnel.type === 'reverse') {
    return {
      code: 'service_unreachable',
      message: `the latest connection through the tunnel did not reach the service: the customer's ssh could not connect to its target${reason}`,
      hint:
        `Check that the service runs and listens on ${service} (the target of the customer's command) as seen ` +
        'from the host running ssh. The tunnel itself is up; the warning clears with the first connection that gets through.',
      since: s.since,
    };
  }
  const bastion = tunnel.ssh ? hostPort(tunnel.ssh.host, tunnel.ssh.port) : 'the bastion';
  return {
    code: 'service_unreachable',
    message: `the latest connection through the tunnel did not reach the service: the bastion at ${bastion} could not connect to ${service}${reason}`,
    hint:
      'Check that the service listens on that address and port as seen from the bastion, and that its security ' +
      'group or firewall allows the bastion. The SSH session is up; the warning clears with the first connection that gets through.',
    since: s.since,
  };
}

export interface StatusViewInput extends StatusInput {
  tunnel: StatusInput['tunnel'] & WarningTunnel;
  signals?: TunnelSignals;
  /** What the serving gateway counted through the tunnel, shown while it is up. */
  traffic?: Traffic;
  /** Stored items of the tunnel that could not be read (read-items.ts). */
  unreadable?: UnreadableItem[];
}

/**
 * What the API shows of a tunnel's status: the status machine's view (status.ts), with the
 * warnings of the signals and its uptime (uptime.ts). An unreadable SIGNALS item costs only the warnings it would have given.
 */
export function tunnelStatusView(input: StatusViewInput): StatusView {
  const { signals, traffic, unreadable = [], ...statusInput } = input;
  const hasLostSignals = unreadable.some((u) => u.item === 'SIGNALS');
  const isHistoryLost = unreadable.some((u) => u.item !== 'SIGNALS');
  let view: StatusView;
  if (isHistoryLost) {
    view = evaluateWithUnreadable(statusInput, unreadable);
    // Only the recorded ledger tells uptime; without the STATUS item it is not shown.
    const recorded = statusInput.previous?.uptime;
    if (recorded) view.status.uptime = uptimeOf(recorded, view.status, input.now);
  } else {
    const evaluation = evaluateStatus(statusInput);
    view = { status: evaluation.status, connect: evaluation.connect };
    if (evaluation.connectors) view.connectors = evaluation.connectors;
    view.status.uptime = uptimeOf(evaluation.ledger, view.status, input.now);
  }
  const { status, connect, connectors } = view;
  // With connectors, the state the warnings look at is the one that stands for them all.
  const connectorsMissing =
    connectors && status.state === 'up' ? connectorsWarning(connectors, input.now) : undefined;
  const state = connectors ? connectors.state : input.state;
  const warnings = [
    ...signalWarnings({ tunnel: input.tunnel, state, signals, status, now: input.now }),
    ...(connectorsMissing ? [connectorsMissing] : []),
    ...(status.warnings ?? []),
  ];
  if (hasLostSignals && !isHistoryLost) {
    const items = unreadable.map((u) => `${u.item} (${u.reason})`).join(', ');
    warnings.push({
      code: 'status_unreadable',
      message: `stored status items of this tunnel cannot be read: ${items}; warnings about logins, takeovers and the service are not shown`,
      hint: 'Nothing to change on your side: the tunnel itself is not affected, and the operators have it in their log.',
      since: input.now.toISOString(),
    });
  }
  if (warnings.length > 0) status.warnings = warnings;
  if (traffic && status.state === 'up') status.traffic = traffic;
  return { status, connect };
}
