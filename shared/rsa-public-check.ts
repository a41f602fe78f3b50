/**
 * The arithmetic checks of an RSA public key, beyond its size: what OpenSSL 3 checks of a public
 * key (crypto/rsa/rsa_sp800_56b_check.c: odd modulus, odd exponent above 1, no prime factor below
 * 752) and what it refuses when it verifies a signature (crypto/rsa/rsa_ossl.c: e < n, and e of at
 * most 64 bits above 3072-bit moduli). A key that fails them is bogus (anyone can factor it or
 * forge its signatures) or can never log in. OpenSSH itself checks only the size. Cheap enough for
 * the request path: a few BigInt operations on at most 16384 bits (well under a millisecond).
 * Not checked: that the modulus is not a prime or a prime power, which takes a Miller-Rabin round
 * (tens of milliseconds of blocked event loop for 4096 bits).
 */

// ossl_rsa_check_public_exponent caps e below 2^256 in FIPS mode; no real key has a larger one,
// and the cap bounds what one signature verification on the gateway costs.
const MAX_EXPONENT_BITS = 256;
// rsa_ossl.c: OPENSSL_RSA_SMALL_MODULUS_BITS / OPENSSL_RSA_MAX_PUBEXP_BITS.
const SMALL_MODULUS_BITS = 3072;
const MAX_PUBEXP_BITS_LARGE_MODULUS = 64;
// Odd primes below 752, as ossl_bn_get0_small_factors(); 2 is ruled out by the odd-modulus check.
const SMALL_PRIMES_PRODUCT = oddPrimesBelow(752).reduce((product, p) => product * BigInt(p), 1n);

/**
 * Why the RSA public key with exponent `e` and modulus `n` (unsigned big-endian bytes, as in an SSH
 * mpint) is unusable, in words for the customer; `undefined` when it passes.
 */
export function rsaPublicKeyProblem(e: Buffer, n: Buffer): string | undefined {
  const exponent = toBigInt(e);
  const modulus = toBigInt(n);
  if ((modulus & 1n) === 0n)
    return 'the RSA modulus is even, so it is not the product of two odd primes: the key is corrupt';
  if (exponent <= 1n) return `the RSA public exponent is ${exponent}; it must be an odd number of at least 3`;
  if ((exponent & 1n) === 0n)
    return 'the RSA public exponent is even, so no private key can match it: the key is corrupt';
  if (exponent >= modulus)
    return 'the RSA public exponent is not smaller than the modulus: the key is corrupt';
  const exponentBits = exponent.toString(2).length;
  if (exponentBits > MAX_EXPONENT_BITS) {
    return `the RSA public exponent has ${exponentBits} bits; at most ${MAX_EXPONENT_BITS} are accepted (ssh-keygen uses 65537)`;
  }
  if (modulus.toString(2).length > SMALL_MODULUS_BITS && exponentBits > MAX_PUBEXP_BITS_LARGE_MODULUS) {
    return `the RSA public exponent has ${exponentBits} bits; OpenSSL verifies no signature of a key over ${SMALL_MODULUS_BITS} bits with an exponent over ${MAX_PUBEXP_BITS_LARGE_MODULUS} bits (ssh-keygen uses 65537)`;
  }
  if (gcd(modulus % SMALL_PRIMES_PRODUCT, SMALL_PRIMES_PRODUCT) !== 1n) {
    return 'the RSA modulus has a small prime factor, so anyone can factor it: the key is corrupt or forged';
  }
  return undefined;
}

function toBigInt(value: Buffer): bigint {
  return value.length === 0 ? 0n : BigInt(`0x${value.toString('hex')}`);
}

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function oddPrimesBelow(limit: number): number[] {
  const composite = new Uint8Array(limit);
  const primes: number[] = [];
  for (let i = 3; i < limit; i += 2) {
    if (composite[i]) continue;
    primes.push(i);
    for (let j = i * i; j < limit; j += 2 * i) composite[j] = 1;
  }
  return primes;
}
