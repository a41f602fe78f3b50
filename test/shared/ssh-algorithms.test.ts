import { describe, expect, it } from 'vitest';
import {
  algorithmOffer,
  CIPHERS_BY_PROFILE,
  COMPRESSION_ALGORITHMS,
  KEX_ALGORITHMS,
  MAC_ALGORITHMS,
  profileForClient,
} from '../../shared/ssh-algorithms';

describe('profileForClient', () => {
  it.each([
    ['SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10', 'aes-gcm'],
    ['SSH-2.0-OpenSSH_10.1', 'aes-gcm'],
    ['SSH-2.0-OpenSSH_6.2', 'aes-gcm'],
    ['SSH-2.0-OpenSSH_6.1p1', 'compatible'],
    ['SSH-2.0-OpenSSH_5.3', 'compatible'],
    ['SSH-1.99-OpenSSH_7.4', 'aes-gcm'],
    ['SSH-2.0-OpenSSH_for_Windows_8.1', 'aes-gcm'],
    ['SSH-2.0-PuTTY_Release_0.78', 'aes-gcm'],
    ['SSH-2.0-PuTTY_Release_0.76', 'aes-gcm'],
    ['SSH-2.0-PuTTY_Release_0.75', 'compatible'],
    ['SSH-2.0-PuTTY_Release_1.0', 'aes-gcm'],
    ['SSH-2.0-PuTTY_Snapshot_2024-01-01.abcdef', 'compatible'],
    ['SSH-2.0-dropbear_2022.83', 'compatible'],
    ['SSH-2.0-libssh_0.10.4', 'compatible'],
    ['SSH-2.0-Go', 'compatible'],
    ['SSH-2.0-ssh2js1.17.0', 'compatible'],
    ['SSH-2.0-OpenSSH', 'compatible'],
    ['SSH-2.0-XOpenSSH_9.2', 'compatible'],
    ['SSH-1.5-OpenSSH_9.2', 'compatible'],
    ['GET / HTTP/1.1', 'compatible'],
    ['', 'compatible'],
    [undefined, 'compatible'],
  ])('gives %j the %s set', (ident, profile) => {
    expect(profileForClient(ident)).toBe(profile);
  });
});

describe('the offer', () => {
  it('offers nothing ssh2 cannot complete: no group exchange, no compression', () => {
    expect(KEX_ALGORITHMS.filter((k) => k.includes('group-exchange'))).toEqual([]);
    expect(COMPRESSION_ALGORITHMS).toEqual(['none']);
  });

  it('gives AES-GCM-capable clients AES-GCM alone, and everyone else a superset of it', () => {
    expect(CIPHERS_BY_PROFILE['aes-gcm']).toEqual(['aes128-gcm@openssh.com', 'aes256-gcm@openssh.com']);
    expect(CIPHERS_BY_PROFILE.compatible.slice(0, 2)).toEqual(CIPHERS_BY_PROFILE['aes-gcm']);
    // What Dropbear 2022.83 can do (`dbclient -c help`, `-m help`) must be there.
    expect(CIPHERS_BY_PROFILE.compatible).toEqual(
      expect.arrayContaining(['chacha20-poly1305@openssh.com', 'aes128-ctr', 'aes256-ctr']),
    );
    expect(MAC_ALGORITHMS).toContain('hmac-sha2-256');
    expect(MAC_ALGORITHMS.filter((m) => /sha1|md5/.test(m))).toEqual([]);
  });

  it('shares everything but the ciphers between the two sets', () => {
    const { cipher: _a, ...gcm } = algorithmOffer('aes-gcm');
    const { cipher: _b, ...compatible } = algorithmOffer('compatible');
    expect(gcm).toEqual(compatible);
  });

  // ssh2 1.17 discards a guessed first key exchange packet even when the guess was right (see
  // KEX_ALGORITHMS), and a client that guessed right then waits forever. A guess is right when the
  // client's first method is the server's first. Dropbear guesses; these are its first choices.
  it.each([
    ['Dropbear built with post-quantum key exchange', 'sntrup761x25519-sha512'],
    ['Dropbear 2018.76 on', 'curve25519-sha256'],
    ['Dropbear 2013.62 to 2018.75', 'curve25519-sha256@libssh.org'],
    ['Dropbear 2013.57 to 2013.61', 'ecdh-sha2-nistp521'],
  ])('never lists first what %s lists first (%s)', (_client, first) => {
    expect(KEX_ALGORITHMS[0]).not.toBe(first);
  });
});
