/** The commands the tunnel page shows for setting up a bastion or a customer host; pure. */
import type { Tunnel } from './api';

/** One POSIX shell word: as is when plainly safe, else single-quoted. */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9@%_+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * On the bastion, as root: the tunnel's user (created if missing), its `.ssh` 0700 and
 * `authorized_keys` 0600, both owned by it, with the tunnel's line appended once.
 */
export function bastionSetup(user: string, authorizedKeysLine: string): string {
  const u = shellWord(user);
  return [
    `id ${u} >/dev/null 2>&1 || sudo useradd -m -s /bin/sh ${u}`,
    `sudo install -d -m 700 -o ${u} -g "$(id -gn ${u})" ~${u}/.ssh`,
    `echo ${shellWord(authorizedKeysLine)} | sudo tee -a ~${u}/.ssh/authorized_keys >/dev/null`,
    `sudo chown ${u}: ~${u}/.ssh/authorized_keys && sudo chmod 600 ~${u}/.ssh/authorized_keys`,
  ].join('\n');
}

/** On the customer's host: the downloaded key moved where the commands expect it, and the host key trusted. */
export function customerSetup(tunnel: Tunnel, downloaded: string): string {
  const keyFile = `~/.ssh/tunnelkeeper_${tunnel.id}`;
  const lines = [
    'install -d -m 700 ~/.ssh',
    `mv ${shellWord(downloaded)} ${keyFile} && chmod 600 ${keyFile}`,
  ];
  if (tunnel.reverse) lines.push(`echo ${shellWord(tunnel.reverse.knownHostsLine)} >> ~/.ssh/known_hosts`);
  return lines.join('\n');
}

/** The file name a downloaded private key gets (the name the commands expect, in ~/Downloads). */
export const keyFileName = (id: string) => `tunnelkeeper_${id}`;
